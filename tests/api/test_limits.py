from __future__ import annotations

from gateway.api.limits import DeviceRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bursts_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(1.0, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait is not None and 0.99 <= wait <= 1.0
    clock.now += 1.0
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("b") is None  # devices are independent


def test_refill_is_capped_at_the_burst() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(1.0, 2, clock=clock)
    limiter.acquire("a")
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(3)][2] is not None


def test_zero_rate_turns_it_off_and_memory_is_bounded() -> None:
    assert DeviceRateLimiter(0.0, 1).acquire("x") is None
    limiter = DeviceRateLimiter(1.0, 1, maxsize=100)
    for i in range(10_000):
        limiter.acquire(f"d{i}")
    assert len(limiter._buckets) <= 100
    assert DeviceRateLimiter.retry_after(0.2) == 1
