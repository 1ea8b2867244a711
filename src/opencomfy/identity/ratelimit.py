"""A per-credential request rate limit: a token bucket per key, in process memory.

Refills `per_minute / 60` tokens a second up to `burst`; a request with no token left is
refused with the seconds until one comes back (the 429's Retry-After)."""

from __future__ import annotations

import math
import time


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
