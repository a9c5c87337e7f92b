"""Runs chat generations off the event loop, a bounded number at a time.

Each admitted generation runs on its own worker thread and hands its text deltas to the event
loop through a queue, so many clients' streams interleave while the loop stays free. At most
``max_concurrent`` run at once; up to ``max_waiting`` more wait for a slot; anything beyond
is refused at once (the route answers 503 with Retry-After) rather than queued without bound.
The same bounded line (Admission) keeps transcriptions from queueing without bound.
When the client goes away, the generation is cancelled and stops within one token.
"""

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from omnicoach.models.llm import Generation
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


class GenerationRunner(Admission):
    def __init__(self, max_concurrent: int, max_waiting: int, retry_after: int):
        super().__init__("generations", max_concurrent, max_waiting, retry_after)
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="generation")

    def start(self, generation: Generation) -> AsyncIterator[str]:
        """Start an admitted generation now; returns its text deltas as they come.

        It starts before the first read, so a client that leaves before reading anything still
        frees its slot: the generation then runs to its (bounded) end unobserved.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def call_in_loop(function, *args) -> None:
            try:
                loop.call_soon_threadsafe(function, *args)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                generation.cancel()

        def produce() -> None:
            try:
                for delta in generation:
                    call_in_loop(queue.put_nowait, delta)
                call_in_loop(queue.put_nowait, _DONE)
            except BaseException as exc:  # hand every failure to the request that owns it
                call_in_loop(queue.put_nowait, exc)
            finally:
                generation.close()
                call_in_loop(self.release)

        self._executor.submit(produce)

        async def deltas() -> AsyncIterator[str]:
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                generation.cancel()  # a no-op when it finished; stops it when the client left

        return deltas()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
