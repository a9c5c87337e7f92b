"""Per-key rate limits: a token bucket for each user, in memory.

Each API key (user) may make `rate_limit_per_minute` requests in a burst, and gets that many
back per minute, refilled continuously; one more is answered 429 with the OpenAI error body
and a `Retry-After` saying when the next request will be let through. The official clients
read that header and retry by themselves.

In memory and per process: several server processes each count on their own, and a restart
forgets the counts. The buckets are as many as the users, so they need no cleanup.
No library: none that fits (slowapi, limits) is installed, and a bucket is a few lines.
"""

import math
import threading
import time
from collections.abc import Callable

from omnicoach.server.errors import APIError


class RateLimited(APIError):
    def __init__(self, retry_after: int, per_minute: int):
        super().__init__(
            429,
            f"rate limit reached: at most {per_minute} requests a minute for each API key; "
            f"retry in {retry_after} s",
            type="requests",  # what OpenAI's API says for a request-count limit
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry_after)},
        )


class RateLimiter:
    """A token bucket per key: `per_minute` tokens at most, refilled at per_minute/60 a
    second, one taken by each request. per_minute 0 turns limiting off. Thread-safe: sync
    routes run on a thread pool."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def wait_seconds(self, key: str) -> float:
        """Take a token for KEY and return 0, or take none and return the seconds until the
        next token."""
        if not self.enabled:
            return 0.0
        capacity, per_second = float(self.per_minute), self.per_minute / 60
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - then) * per_second)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / per_second

    def check(self, key: str) -> None:
        """Count a request for KEY; raise RateLimited (429) when its bucket is empty."""
        wait = self.wait_seconds(key)
        if wait > 0:
            raise RateLimited(max(1, math.ceil(wait)), self.per_minute)
