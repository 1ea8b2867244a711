"""Rate limits in process memory: requests per credential (a token bucket per key) and
failed credential attempts per client address (a sliding window).

The token bucket refills `per_minute / 60` tokens a second up to `burst`; a request with no
token left is refused with the seconds until one comes back (the 429's Retry-After)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    MAX_TRACKED = 100_000  # buckets beyond this are dropped oldest-first (bounded memory)

    def __init__(self, *, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> int:
        """0 when the request may go on, else the seconds to wait."""
        if not self.enabled:
            return 0
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0
        else:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        if len(self._buckets) > self.MAX_TRACKED:
            self._buckets.pop(next(iter(self._buckets)))
        return wait


class FailureLimiter:
    """Failed credential attempts per client address, in a sliding window.

    Once `limit` failures fall within `window_s`, the address waits until the oldest of them
    leaves the window. Only failures count: a success neither costs anything nor resets the
    count (a valid key must not wash away guesses made beside it), and other addresses'
    failures never slow this one."""

    MAX_TRACKED = 100_000

    def __init__(self, *, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(0, limit)
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def wait(self, key: str) -> int:
        """0 when `key` may try a credential, else the seconds until it may."""
        if not self.enabled:
            return 0
        times = self._failures.get(key)
        if times is None:
            return 0
        now = self._clock()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window_s - now))

    def record(self, key: str) -> None:
        """Count one failed attempt from `key`."""
        if not self.enabled:
            return
        times = self._failures.pop(key, None) or deque(maxlen=self.limit)
        times.append(self._clock())
        self._failures[key] = times  # re-inserted: the dict's order is oldest activity first
        if len(self._failures) > self.MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))
