"""Carrier reads on behalf of location reads: few, remembered, and never in the writes' way.

A device's location is read from what the gateway knows (the pipeline's cache, then the
state store). Only a device neither holds (never reported through this gateway, or
edited by an admin) sends the read to the carrier, and ``CarrierReads`` bounds that:

- one carrier read per device per ``interval`` seconds: its answer, found or not, serves
  every read of that device until then; one that failed answers them 503 until then;
- concurrent reads of one device share one carrier read (single flight);
- at most ``max_in_flight`` such reads at once, and ``rate`` per second (a burst of
  ``burst``) across all devices: a small share of the carrier's connections and of its
  account's rate limit, so reads can never crowd out reports. Past either bound a read
  is refused at once, 503 with ``Retry-After``, without a call.

The domain: no Starlette, no httpx.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from gateway.bandwidth.errors import UpstreamError, UpstreamUnavailable
from gateway.concurrency import SingleFlight
from gateway.lru import Lru

T = TypeVar("T")


class _Failed:
    """A carrier read that failed: remembered as such for the interval."""

    __slots__ = ()


_FAILED = _Failed()


class CarrierReads(Generic[T]):
    """The bounds above, for reads keyed by device; ``T`` is what one read answers."""

    def __init__(
        self,
        *,
        interval: float = 60.0,
        max_in_flight: int = 4,
        rate: float = 5.0,
        burst: int = 10,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0 or max_in_flight < 1 or rate <= 0 or burst < 1:
            raise ValueError("interval >= 0, max_in_flight >= 1, rate > 0 and burst >= 1")
        self.interval = interval
        self.max_in_flight = max_in_flight
        self.rate = rate
        self.burst = burst
        self.clock = clock
        #: Device -> (when it was read, what the read answered, or that it failed).
        self._answers: Lru[str, tuple[float, T | _Failed]] = Lru(max(1, maxsize))
        self._flights: SingleFlight[str, T] = SingleFlight()
        self._in_flight = 0
        #: GCRA: the time at which the bucket is full again.
        self._full_at = -math.inf

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def forget(self, key: str) -> None:
        """Drop what was read for ``key`` (the gateway now knows better)."""
        self._answers.pop(key, None)

    async def read(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """What ``fetch()`` answered for ``key`` within the interval, else a new ``fetch()``."""
        now = self.clock()
        known = self._answers.get(key)
        if known is not None and now - known[0] < self.interval:
            answered = known[1]
            if isinstance(answered, _Failed):
                raise self._busy(
                    "the carrier did not answer the last read of this device",
                    known[0] + self.interval - now,
                )
            return answered
        return await self._flights.do(key, lambda: self._fetch(key, fetch))

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        if self._in_flight >= self.max_in_flight:
            raise self._busy("carrier reads are at their limit", 1.0)
        wait = self._take()
        if wait is not None:
            raise self._busy("carrier reads are at their rate", wait)
        self._in_flight += 1
        try:
            answered = await fetch()
        except UpstreamError:
            self._answers[key] = (self.clock(), _FAILED)
            raise
        finally:
            self._in_flight -= 1
        self._answers[key] = (self.clock(), answered)
        return answered

    def _take(self) -> float | None:
        """One token: ``None`` when there was one, else the seconds until there is."""
        now = self.clock()
        step = 1.0 / self.rate
        full_at = max(self._full_at, now)
        ahead = full_at + step - now - self.burst * step
        if ahead > 1e-9:  # not a rounding error of the sum of steps
            return ahead
        self._full_at = full_at + step
        return None

    @staticmethod
    def _busy(why: str, retry_after: float) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"the gateway holds no location for this device, and {why}; try again later",
            operation="getEndpoint",
            retry_after=max(1.0, math.ceil(retry_after)),
        )
