"""Runs chat generations off the event loop, a bounded number at a time.

Each admitted generation runs on its own worker thread and hands its text deltas to the event
loop through a queue, so many clients' streams interleave while the loop stays free. At most
``max_concurrent`` run at once; up to ``max_waiting`` more wait for a slot; anything beyond
is refused at once (the route answers 503 with Retry-After) rather than queued without bound.
When the client goes away, the generation is cancelled and stops within one token.
"""

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from omnicoach.models.llm import Generation
from omnicoach.server.errors import ServerBusy

_DONE = object()


class GenerationRunner:
    def __init__(self, max_concurrent: int, max_waiting: int, retry_after: int):
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running = 0
        self._waiting = 0
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="generation")

    async def admit(self) -> None:
        """Take a slot, waiting in line if allowed; raise ServerBusy when the line is full."""
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise ServerBusy(self.retry_after)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1

    def stats(self) -> dict:
        return {"running": self._running, "waiting": self._waiting}

    def release(self) -> None:
        self._running -= 1
        self._slots.release()

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
