"""Runs the assistant's turns off the event loop, their generations a bounded number at a time.

Each turn runs on its own worker thread and hands its events to the event loop through a
queue, so many clients' streams interleave while the loop stays free. A turn takes a
generation slot while it generates (the assistant's Gates, blocking_slot): at most
``max_concurrent`` run at once; up to ``max_waiting`` more wait for a slot; anything beyond
is refused at once (the route answers 503 with Retry-After) rather than queued without bound.
The same bounded line (Admission) keeps transcriptions from queueing without bound.
When the client goes away, the turn is cancelled and its generation stops within one token.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress

from omnicoach.assistant import Answering, Turn
from omnicoach.server.errors import ServerBusy

_DONE = object()


class Admission:
    """At most MAX_CONCURRENT pieces of WHAT ("generations", "transcriptions") at once, up to
    MAX_WAITING more in line; past that, ServerBusy (503 with Retry-After) at once."""

    def __init__(self, what: str, max_concurrent: int, max_waiting: int, retry_after: int):
        self.what, self.max_waiting, self.retry_after = what, max_waiting, retry_after
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running = 0
        self._waiting = 0

    def refuse_if_full(self) -> None:
        """ServerBusy now if admit() would refuse now: a request checks this before its own
        costly preparation (transcribing, routing, retrieval), so a refusal is cheap. A place
        is not kept: admit() may still refuse if the line fills meanwhile."""
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise ServerBusy(self.retry_after, self.what)

    async def admit(self) -> None:
        """Take a slot, waiting in line if allowed; raise ServerBusy when the line is full."""
        self.refuse_if_full()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1

    def release(self) -> None:
        self._running -= 1
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.admit()
        try:
            yield
        finally:
            self.release()

    def stats(self) -> dict:
        return {"running": self._running, "waiting": self._waiting}


class TurnRunner(Admission):
    """Runs the assistant's turns on worker threads; holds the generation slots they take."""

    def __init__(self, max_concurrent: int, max_waiting: int, retry_after: int, threads: int):
        super().__init__("generations", max_concurrent, max_waiting, retry_after)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="turn")

    def start(self, turn: Turn) -> "TurnStream":
        """Start TURN now; returns its events as they come.

        It starts before the first read, so a client that leaves before reading anything still
        frees its slot: the turn then runs to its (bounded) end unobserved.
        """
        loop = asyncio.get_running_loop()
        stream = TurnStream(turn)

        def hand_over(item) -> None:
            try:
                loop.call_soon_threadsafe(stream.queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                turn.cancel()

        def produce() -> None:
            try:
                for event in turn:
                    hand_over(event)
                hand_over(_DONE)
            except BaseException as exc:  # hand every failure to the request that owns it
                hand_over(exc)

        self._executor.submit(produce)
        return stream

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def blocking_slot(admission: Admission, loop: asyncio.AbstractEventLoop):
    """A context-manager factory that takes a slot of ADMISSION from a worker thread: it waits
    in ADMISSION's line on LOOP (ServerBusy when the line is full) and releases on exit. The
    assistant's Gates hold these."""

    @contextmanager
    def slot() -> Iterator[None]:
        asyncio.run_coroutine_threadsafe(admission.admit(), loop).result()
        try:
            yield
        finally:
            with suppress(RuntimeError):  # the loop is gone: so is the line
                loop.call_soon_threadsafe(admission.release)

    return slot


class TurnStream:
    """A running turn's events on the event loop: `head()` waits for everything up to the
    answer's start (failures there are the response's status), then iterate for the rest.
    Closing it (the client left) cancels the turn."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self.queue: asyncio.Queue = asyncio.Queue()

    async def _next(self):
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def head(self) -> list:
        """The events before the answer's text, Answering last."""
        events = []
        try:
            while not isinstance(event := await self._next(), Answering):
                if event is _DONE:
                    raise RuntimeError("the turn ended before its answer started")
                events.append(event)
        except BaseException:
            self.turn.cancel()
            raise
        return [*events, event]

    async def __aiter__(self) -> AsyncIterator:
        try:
            while (event := await self._next()) is not _DONE:
                yield event
        finally:
            self.turn.cancel()  # a no-op when it finished; stops it when the client left
