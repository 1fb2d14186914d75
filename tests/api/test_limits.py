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


def test_full_buckets_are_forgotten_so_memory_follows_recent_devices() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(1.0, 10, maxsize=1_000_000, clock=clock)
    for i in range(5_000):  # one report each, a millisecond apart: 5 s in all
        assert limiter.acquire(f"d{i}") is None
        clock.now += 0.001
    # Each bucket is full again 1 s after its report: only the last second's devices stay.
    assert len(limiter._buckets) < 2_100
    # And a device forgotten is a fresh one: a full burst again.
    assert [limiter.acquire("d0") for _ in range(10)] == [None] * 10
    assert limiter.acquire("d0") is not None


def test_a_flood_of_distinct_devices_costs_constant_work_per_report() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(1.0, 1, maxsize=1_000, clock=clock)
    sweeps = 0
    original = limiter._sweep

    def counting(now: float) -> None:
        nonlocal sweeps
        sweeps += 1
        original(now)

    limiter._sweep = counting  # type: ignore[method-assign]
    for i in range(20_000):  # all live (no time passes): only eviction bounds them
        limiter.acquire(f"d{i}")
        assert len(limiter._buckets) <= 1_000
    assert sweeps <= 20_000 // 100 + 1  # a sweep per ~100 insertions at most, not per one
