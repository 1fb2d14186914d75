"""Caches, single flight, rate limit, errors and metrics, with a fake clock and an in-memory
geopy geocoder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

import httpx
import pytest
from geopy.exc import (
    GeocoderAuthenticationFailure,
    GeocoderParseError,
    GeocoderQuotaExceeded,
    GeocoderRateLimited,
    GeocoderServiceError,
    GeocoderTimedOut,
    GeocoderUnavailable,
)

from gateway.bandwidth.models import Address
from gateway.geocoding import (
    GeocodeResult,
    Geocoding,
    GeocodingUnavailable,
    OfflineGeocoder,
    Precision,
    build_geocoding,
)
from gateway.metrics import Metrics
from gateway.settings import Settings, SettingsError
from gateway.settings.geocoding import GeocodingSettings

from .doubles import CountingGeocoder, FakeClock

HOME = Address(
    house_number="1600",
    street_name="PENNSYLVANIA",
    street_suffix="AVE",
    post_directional="NW",
    city="WASHINGTON",
    state_code="DC",
    zip="20500",
    country="US",
)


def service(
    geocoder: Any,
    metrics: Metrics,
    clock: FakeClock,
    *,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    **kw: Any,
) -> Geocoding:
    options: dict[str, Any] = {
        "geocode_cache_size": 100,
        "geocode_cache_ttl": 3600.0,
        "geocode_negative_ttl": 60.0,
        "geocode_timeout": 5.0,
    }
    settings = GeocodingSettings(**(options | kw))
    return Geocoding(
        geocoder, "counting", settings, metrics=metrics, timer=clock, sleep=sleep or clock.sleep
    )


def run(body: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(body())


def test_found_answers_expire_after_the_ttl(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> None:
        first = await g.geocode(HOME)
        assert first == GeocodeResult(38.8977, -77.0365, Precision.STREET, "counting")
        clock.advance(3599)
        assert await g.geocode(HOME) == first
        assert len(counting.queries) == 1
        clock.advance(2)
        assert await g.geocode(HOME) == first
        assert len(counting.queries) == 2

    run(body)


def test_not_found_expires_after_the_negative_ttl(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    counting.found = False
    g = service(counting, metrics, clock)

    async def body() -> None:
        assert await g.geocode(HOME) is None
        clock.advance(59)
        assert await g.geocode(HOME) is None
        assert len(counting.queries) == 1
        clock.advance(2)
        counting.found = True
        assert await g.geocode(HOME) is not None
        assert len(counting.queries) == 2

    run(body)


def test_errors_are_not_cached(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    counting.error = GeocoderUnavailable("down")
    g = service(counting, metrics, clock)

    async def body() -> None:
        for _ in range(3):
            with pytest.raises(GeocodingUnavailable):
                await g.geocode(HOME)
        assert len(counting.queries) == 3
        counting.error = None
        assert await g.geocode(HOME) is not None
        assert await g.geocode(HOME) is not None
        assert len(counting.queries) == 4

    run(body)


@pytest.mark.parametrize(
    "error",
    [
        GeocoderTimedOut("slow"),
        GeocoderUnavailable("down"),
        GeocoderServiceError("broken"),
        GeocoderParseError("garbage"),
        GeocoderQuotaExceeded("over quota"),
        GeocoderAuthenticationFailure("bad key"),
        KeyError("lat"),  # a provider answer geopy could not read
    ],
)
def test_every_provider_error_is_unavailable(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock, error: Exception
) -> None:
    counting.error = error
    g = service(counting, metrics, clock)

    async def body() -> None:
        with pytest.raises(GeocodingUnavailable) as caught:
            await g.geocode(HOME)
        assert caught.value.retry_after is None
        assert caught.value.__cause__ is error

    run(body)


def test_rate_limited_keeps_retry_after(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    counting.error = GeocoderRateLimited("slow down", retry_after=30)
    g = service(counting, metrics, clock)

    async def body() -> None:
        with pytest.raises(GeocodingUnavailable) as caught:
            await g.reverse(38.8977, -77.0365)
        assert caught.value.retry_after == 30.0

    run(body)


def test_overall_timeout_bounds_a_lookup(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    async def body() -> None:
        counting.gate = asyncio.Event()  # never set: the provider hangs
        g = service(counting, metrics, clock, geocode_timeout=0.005)
        with pytest.raises(GeocodingUnavailable, match="did not answer"):
            await g.geocode(HOME)

    run(body)


def test_fifty_concurrent_misses_make_one_call(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> None:
        results = await asyncio.gather(*(g.geocode(HOME) for _ in range(50)))
        assert len(counting.queries) == 1
        assert len(set(results)) == 1
        assert results[0] is not None

    run(body)
    assert (
        metrics.registry.get_sample_value(
            "dlr_cache_lookups_total", {"cache": "geocode", "result": "miss"}
        )
        == 50
    )


def test_an_error_reaches_all_fifty_waiters_and_the_next_call_retries(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    counting.error = GeocoderServiceError("boom")
    g = service(counting, metrics, clock)

    async def body() -> None:
        outcomes = await asyncio.gather(
            *(g.geocode(HOME) for _ in range(50)), return_exceptions=True
        )
        assert len(counting.queries) == 1
        assert all(isinstance(o, GeocodingUnavailable) for o in outcomes)
        counting.error = None
        assert await g.geocode(HOME) is not None
        assert len(counting.queries) == 2

    run(body)


def test_a_cancelled_waiter_does_not_cancel_the_shared_call(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> None:
        counting.gate = asyncio.Event()
        first = asyncio.create_task(g.geocode(HOME))
        second = asyncio.create_task(g.geocode(HOME))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        counting.gate.set()
        result = await second
        assert result is not None
        assert first.cancelled()
        assert len(counting.queries) == 1
        assert await g.geocode(HOME) == result  # cached by the call that was not cancelled
        assert len(counting.queries) == 1

    run(body)


def test_every_waiter_cancelled_still_fills_the_cache(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> None:
        counting.gate = asyncio.Event()
        waiter = asyncio.create_task(g.geocode(HOME))
        await asyncio.sleep(0)
        waiter.cancel()
        counting.gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert await g.geocode(HOME) is not None
        assert len(counting.queries) == 1

    run(body)


def test_units_and_zip4_share_a_cache_entry(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> None:
        await g.geocode(HOME)
        await g.geocode(replace(HOME, address_line2="APT 2", plus_four="0003"))
        await g.geocode(replace(HOME, house_number="1602"))

    run(body)
    assert len(counting.queries) == 2


def test_reverse_is_keyed_by_rounded_coordinates(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body() -> GeocodeResult | None:
        result = await g.reverse(38.8977001, -77.0365004)
        await g.reverse(38.8976999, -77.0364996)
        await g.reverse(38.8978, -77.0365)
        return result

    result = run(body)
    assert len(counting.reverses) == 2
    assert counting.reverses[0].latitude == 38.8977
    assert result is not None
    assert result.precision is Precision.STREET
    assert result.address == Address(
        house_number="1600",
        street_name="Pennsylvania Avenue Northwest",
        city="WASHINGTON",
        state_code="DC",
        zip="20500",
        plus_four="0003",
        country="US",
    )


def test_reverse_rejects_impossible_coordinates(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock)

    async def body(lat: float, lon: float) -> None:
        await g.reverse(lat, lon)

    for lat, lon in ((91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0)):
        with pytest.raises(ValueError, match="coordinate"):
            asyncio.run(body(lat, lon))
    assert counting.reverses == []


def test_reverse_expiry_and_negative_answers(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    counting.found = False
    g = service(counting, metrics, clock, geocode_cache_ttl=100.0, geocode_negative_ttl=10.0)

    async def body() -> None:
        assert await g.reverse(40.0, -75.0) is None
        clock.advance(9)
        assert await g.reverse(40.0, -75.0) is None
        assert len(counting.reverses) == 1
        clock.advance(2)
        counting.found = True
        assert await g.reverse(40.0, -75.0) is not None
        clock.advance(99)
        assert await g.reverse(40.0, -75.0) is not None
        assert len(counting.reverses) == 2
        clock.advance(2)
        await g.reverse(40.0, -75.0)
        assert len(counting.reverses) == 3

    run(body)


def test_rate_limit_spaces_provider_calls(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock, geocode_rate_limit=2.0)

    async def body() -> None:
        for n in range(4):
            await g.geocode(Address(house_number=str(n), street_name="MAIN", zip="20500"))
        await g.geocode(Address(house_number="0", street_name="MAIN", zip="20500"))  # cached

    run(body)
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert len(counting.queries) == 4


def test_a_burst_past_the_rate_limit_does_not_queue_turns_for_later_lookups(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    """100 new addresses at once with GEOCODE_RATE_LIMIT=1: one is looked up, the rest fail at
    once (their turn is past the timeout), and a second later the geocoder is usable again,
    not booked for the next 100 seconds."""

    async def stuck(seconds: float) -> None:
        await asyncio.Event().wait()  # a turn that would have to be waited for never comes

    g = service(counting, metrics, clock, geocode_rate_limit=1.0, sleep=stuck, geocode_timeout=0.05)

    async def lookup(n: int) -> bool:
        try:
            await g.geocode(Address(house_number=str(n), street_name="MAIN", zip="20500"))
        except GeocodingUnavailable:
            return False
        return True

    async def body() -> None:
        answered = await asyncio.gather(*(lookup(n) for n in range(100)))
        assert answered.count(True) == 1
        clock.advance(1.0)
        assert await lookup(1000)

    run(body)
    assert len(counting.queries) == 2


def test_rate_limit_zero_never_waits(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock, geocode_rate_limit=0.0)

    async def body() -> None:
        await asyncio.gather(*(g.reverse(40.0 + n / 100, -75.0) for n in range(10)))

    run(body)
    assert clock.sleeps == []
    assert len(counting.reverses) == 10


def test_zero_size_cache_still_answers(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    g = service(counting, metrics, clock, geocode_cache_size=0)

    async def body() -> None:
        assert await g.geocode(HOME) is not None
        assert await g.geocode(HOME) is not None

    run(body)
    assert len(counting.queries) == 2


def test_metrics_move(counting: CountingGeocoder, metrics: Metrics, clock: FakeClock) -> None:
    g = service(counting, metrics, clock)

    async def provider_takes_a_while(query: Any, **kwargs: Any) -> Any:
        clock.advance(0.2)
        return await CountingGeocoder.geocode(counting, query, **kwargs)

    counting.geocode = provider_takes_a_while  # type: ignore[method-assign]

    async def body() -> None:
        await g.geocode(HOME)
        await g.geocode(HOME)
        await g.geocode(HOME)
        await g.reverse(38.0, -77.0)

    run(body)
    sample = metrics.registry.get_sample_value
    assert sample("dlr_cache_lookups_total", {"cache": "geocode", "result": "miss"}) == 1
    assert sample("dlr_cache_lookups_total", {"cache": "geocode", "result": "hit"}) == 2
    assert sample("dlr_cache_lookups_total", {"cache": "reverse_geocode", "result": "miss"}) == 1
    miss = {"provider": "counting", "cache": "miss"}
    hit = {"provider": "counting", "cache": "hit"}
    assert sample("dlr_geocode_duration_seconds_count", miss) == 2
    assert sample("dlr_geocode_duration_seconds_sum", miss) == pytest.approx(0.2)
    assert sample("dlr_geocode_duration_seconds_count", hit) == 2
    assert sample("dlr_geocode_duration_seconds_sum", hit) == 0
    assert sample("dlr_geocode_duration_seconds_bucket", {**miss, "le": "0.25"}) == 2


def test_errors_are_timed_apart_from_misses(
    counting: CountingGeocoder, metrics: Metrics, clock: FakeClock
) -> None:
    # Failures get their own label so that an alert can see a failing provider.
    counting.error = GeocoderTimedOut("slow")
    g = service(counting, metrics, clock)
    with pytest.raises(GeocodingUnavailable):
        run(lambda: g.geocode(HOME))
    labels = {"provider": "counting", "cache": "error"}
    assert metrics.registry.get_sample_value("dlr_geocode_duration_seconds_count", labels) == 1
    miss = {"provider": "counting", "cache": "miss"}
    assert metrics.registry.get_sample_value("dlr_geocode_duration_seconds_count", miss) is None


# --- build_geocoding ---------------------------------------------------------------------------


def test_build_offline_by_default(metrics: Metrics, clock: FakeClock) -> None:
    async def body() -> GeocodeResult | None:
        async with httpx.AsyncClient(trust_env=False) as client:
            g = build_geocoding(Settings(), metrics, client, timer=clock)
            assert isinstance(g.geocoder, OfflineGeocoder)
            assert g.provider == "offline"
            return await g.geocode(HOME)

    result = run(body)
    assert result is not None
    assert result.precision is Precision.POSTAL
    assert result.provider == "offline"
    assert (result.latitude, result.longitude) == (38.8946, -77.0355)


def test_build_unknown_geocoder_is_a_settings_error(metrics: Metrics) -> None:
    async def body() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            build_geocoding(Settings(geocoder="no-such-thing"), metrics, client)

    with pytest.raises(SettingsError, match=r"GEOCODER='no-such-thing'.*nominatim"):
        run(body)


def test_build_with_unusable_options_is_a_settings_error(metrics: Metrics) -> None:
    async def body(options: dict[str, Any]) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            build_geocoding(
                Settings(geocoder="nominatim", geocoder_options=options), metrics, client
            )

    # The public Nominatim refuses geopy's default user agent.
    with pytest.raises(SettingsError, match="GEOCODER_OPTIONS"):
        run(lambda: body({}))
    with pytest.raises(SettingsError, match="GEOCODER_OPTIONS"):
        run(lambda: body({"user_agent": "x", "no_such_option": 1}))


def test_build_passes_options_and_the_httpx_adapter(metrics: Metrics) -> None:
    from gateway.geocoding import HttpxAdapter

    async def body() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            settings = Settings(
                geocoder="Nominatim",
                geocoder_options={"domain": "geo.example", "user_agent": "dlr-test"},
                geocode_timeout=1.5,
            )
            g = build_geocoding(settings, metrics, client)
            assert g.provider == "nominatim"
            assert g.geocoder.domain == "geo.example"
            assert g.geocoder.timeout == 1.5
            assert g.timeout == 1.5
            assert isinstance(g.geocoder.adapter, HttpxAdapter)
            assert g.geocoder.adapter.client is client

    run(body)
