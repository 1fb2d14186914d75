"""Per-device report rate limit: no device can flood the carrier through the gateway.

A token bucket per AEUI, refilled at ``rate`` reports per second up to ``burst``, kept as
GCRA keeps it (one number per device); a bounded map, so a flood of distinct AEUIs cannot
grow memory. A bucket that is full again is as good as a fresh one, so dropping it loses
nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class DeviceRateLimiter:
    """GCRA, the token bucket kept as one number per device: the moment its bucket is full
    again (``tat``). A device whose moment has passed is as good as unknown, so it is swept
    out: memory follows the devices that reported within the last ``burst / rate`` seconds,
    not every device ever seen, as an LRU of buckets did.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        maxsize: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.maxsize = max(1, maxsize)
        self._interval = 1.0 / rate if rate > 0 else 0.0
        #: How far ahead of now a device's ``tat`` may be and still report: the burst.
        self._tolerance = self.burst * self._interval
        #: AEUI -> when its bucket is full again; in insertion order (oldest first).
        self._buckets: dict[str, float] = {}
        self._sweep_at = min(1024, self.maxsize + 1)

    def acquire(self, key: str) -> float | None:
        """Take one token: ``None`` when allowed, else the seconds until the next token."""
        if self.rate <= 0:
            return None
        now = self.clock()
        full_at = max(self._buckets.get(key, now), now)
        ahead = full_at + self._interval - now
        if ahead > self._tolerance:
            return max(0.001, ahead - self._tolerance)
        self._buckets.pop(key, None)  # re-inserted last: the dict stays ordered by use
        self._buckets[key] = full_at + self._interval
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        """Drop every bucket that is full again. Past ``maxsize`` (a flood of distinct
        AEUIs), the least recently used down to 90 % of it, so that the next sweep is a
        tenth of ``maxsize`` insertions away: linear time per sweep, constant per report."""
        self._buckets = {k: t for k, t in self._buckets.items() if t > now}
        if len(self._buckets) > self.maxsize:
            keep = int(self.maxsize * 0.9)
            oldest = iter(list(self._buckets)[: len(self._buckets) - keep])
            for key in oldest:
                del self._buckets[key]
        self._sweep_at = min(max(1024, 2 * len(self._buckets)), self.maxsize + 1)

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))
