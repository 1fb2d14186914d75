"""The whole geopy path — Nominatim class, HttpxAdapter, shared httpx client — against a
Nominatim-shaped server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.bandwidth.models import Address
from gateway.geocoding import (
    GeocodeResult,
    Geocoding,
    GeocodingUnavailable,
    Precision,
    build_geocoding,
)
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.simulator import SimulatorTransport
from gateway.wiring import Wiring
from tests.harness import gateway_settings, new_simulator, until

from .doubles import FakeClock
from .fake_nominatim import FakeNominatim

WHITE_HOUSE = Address(
    house_number="1600",
    street_name="PENNSYLVANIA",
    street_suffix="AVE",
    post_directional="NW",
    address_line2="STE 100",
    city="WASHINGTON",
    state_code="DC",
    zip="20500",
    plus_four="0003",
    country="US",
)
NOWHERE = Address(
    house_number="1", street_name="NOWHERE", city="WASHINGTON", state_code="DC", zip="20500"
)


def settings(fake: FakeNominatim, **overrides: Any) -> Settings:
    options = {"domain": fake.domain, "scheme": "http", "user_agent": "dlr-gateway-tests"}
    return Settings(geocoder="nominatim", geocoder_options=options, **overrides)


def run(
    fake: FakeNominatim,
    metrics: Metrics,
    clock: FakeClock,
    body: Callable[[Geocoding], Awaitable[Any]],
    **overrides: Any,
) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(trust_env=False) as client:
            geocoding = build_geocoding(
                settings(fake, **overrides), metrics, client, timer=clock, sleep=clock.sleep
            )
            return await body(geocoding)

    return asyncio.run(main())


def test_street_level_answer(nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock) -> None:
    result = run(nominatim, metrics, clock, lambda g: g.geocode(WHITE_HOUSE))
    assert result == GeocodeResult(
        latitude=38.8976997, longitude=-77.0365532, precision=Precision.STREET, provider="nominatim"
    )
    [(path, params, agent)] = nominatim.requests
    assert path == "/search"
    assert agent == "dlr-gateway-tests"
    # A structured query, without the unit or ZIP+4.
    assert params["street"] == "1600 PENNSYLVANIA AVE NW"
    assert (params["city"], params["state"], params["postalcode"], params["country"]) == (
        "WASHINGTON",
        "DC",
        "20500",
        "US",
    )
    assert params["addressdetails"] == "1"
    assert "q" not in params


def test_postcode_and_city_answers_are_not_street_level(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    async def body(g: Geocoding) -> tuple[GeocodeResult | None, GeocodeResult | None]:
        by_zip = await g.geocode(Address(city="WASHINGTON", state_code="DC", zip="20500"))
        by_street = await g.geocode(Address(street_name="MAIN", street_suffix="ST", city="X"))
        return by_zip, by_street

    by_zip, by_street = run(nominatim, metrics, clock, body)
    assert by_zip is not None
    assert by_zip.precision is Precision.POSTAL
    assert by_street is not None
    assert by_street.precision is Precision.LOCALITY


def test_units_of_one_building_share_one_lookup(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    async def body(g: Geocoding) -> None:
        first = await g.geocode(WHITE_HOUSE)
        second = await g.geocode(replace(WHITE_HOUSE, address_line2="FL 2", plus_four=None))
        assert first == second

    run(nominatim, metrics, clock, body)
    assert nominatim.calls("/search") == 1


def test_not_found_is_none_and_cached_negatively(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    async def body(g: Geocoding) -> None:
        assert await g.geocode(NOWHERE) is None
        assert await g.geocode(NOWHERE) is None
        assert nominatim.calls("/search") == 1
        clock.advance(300.1)  # the default GEOCODE_NEGATIVE_TTL
        assert await g.geocode(NOWHERE) is None
        assert nominatim.calls("/search") == 2

    run(nominatim, metrics, clock, body)


@pytest.mark.parametrize(
    "state_code",
    [pytest.param("IL", id="another-state"), pytest.param(None, id="far-from-the-zip")],
)
def test_an_answer_for_another_place_is_not_used(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock, state_code: str | None
) -> None:
    """Asked for 1600 Main St, Springfield IL 62701, the provider answers the White House:
    in DC by its own details, 1 100 km from 62701. Not found (and cached so), never a
    street-level position in another state for this address's 911 record."""
    springfield = Address(
        house_number="1600",
        street_name="MAIN",
        street_suffix="ST",
        city="SPRINGFIELD",
        state_code=state_code,
        zip="62701",
        country="US",
    )

    async def body(g: Geocoding) -> None:
        assert await g.geocode(springfield) is None
        assert await g.geocode(springfield) is None
        assert await g.geocode(WHITE_HOUSE) is not None  # the same answer, its own address

    run(nominatim, metrics, clock, body)
    assert nominatim.calls("/search") == 2


def test_timeout_is_unavailable_and_not_cached(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    nominatim.mode = "slow"

    async def body(g: Geocoding) -> None:
        for attempt in (1, 2):
            with pytest.raises(GeocodingUnavailable) as caught:
                await g.geocode(WHITE_HOUSE)
            assert caught.value.retry_after is None
            assert nominatim.calls("/search") == attempt

    # Long enough for the request to reach the server on a busy machine (at 10 ms, the
    # second one was sometimes cut off before it was sent); the server holds it longer.
    run(nominatim, metrics, clock, body, geocode_timeout=0.2)


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_error_is_unavailable_and_not_cached(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock, status: str
) -> None:
    nominatim.mode = status

    async def body(g: Geocoding) -> GeocodeResult | None:
        with pytest.raises(GeocodingUnavailable):
            await g.geocode(WHITE_HOUSE)
        nominatim.mode = "ok"
        return await g.geocode(WHITE_HOUSE)

    result = run(nominatim, metrics, clock, body)
    assert result is not None
    assert result.precision is Precision.STREET
    assert nominatim.calls("/search") == 2


def test_rate_limited_carries_retry_after(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    nominatim.mode = "429"
    nominatim.retry_after = "42"

    async def body(g: Geocoding) -> GeocodingUnavailable:
        with pytest.raises(GeocodingUnavailable) as caught:
            await g.geocode(WHITE_HOUSE)
        return caught.value

    error = run(nominatim, metrics, clock, body)
    assert error.retry_after == 42.0
    assert "rate" in str(error)


def test_reverse_gives_a_street_level_address(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    async def body(g: Geocoding) -> GeocodeResult | None:
        first = await g.reverse(38.897676, -77.036530)
        # Within the ~1 m key: the same entry.
        again = await g.reverse(38.8976761, -77.0365304)
        assert again == first
        return first

    result = run(nominatim, metrics, clock, body)
    assert result is not None
    assert result.precision is Precision.STREET
    assert result.address == Address(
        house_number="1600",
        street_name="Pennsylvania Avenue Northwest",
        city="WASHINGTON",
        state_code="DC",
        zip="20500",
        country="US",
    )
    [(path, params, _)] = nominatim.requests
    assert path == "/reverse"
    assert (params["lat"], params["lon"]) == ("38.89768", "-77.03653")
    assert (
        metrics.registry.get_sample_value(
            "dlr_cache_lookups_total", {"cache": "reverse_geocode", "result": "hit"}
        )
        == 1
    )


def test_reverse_nothing_there_is_none(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    assert run(nominatim, metrics, clock, lambda g: g.reverse(-45.0, -30.0)) is None


def test_fifty_concurrent_lookups_make_one_call(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    async def body(g: Geocoding) -> list[GeocodeResult | None]:
        return await asyncio.gather(*(g.geocode(WHITE_HOUSE) for _ in range(50)))

    results = run(nominatim, metrics, clock, body)
    assert len(set(results)) == 1
    assert results[0] is not None
    assert nominatim.calls("/search") == 1


def test_fifty_concurrent_lookups_share_one_error_then_retry(
    nominatim: FakeNominatim, metrics: Metrics, clock: FakeClock
) -> None:
    nominatim.mode = "500"

    async def body(g: Geocoding) -> None:
        outcomes = await asyncio.gather(
            *(g.geocode(WHITE_HOUSE) for _ in range(50)), return_exceptions=True
        )
        assert all(isinstance(o, GeocodingUnavailable) for o in outcomes)
        assert nominatim.calls("/search") == 1
        nominatim.mode = "ok"
        assert await g.geocode(WHITE_HOUSE) is not None
        assert nominatim.calls("/search") == 2

    run(nominatim, metrics, clock, body)


def test_a_burst_of_new_addresses_opens_at_most_geocode_max_connections(
    nominatim: FakeNominatim,
) -> None:
    """200 new addresses at once, the geocoder holding every call: the gateway's geocoder
    client (as the app wires it) has at most GEOCODE_MAX_CONNECTIONS calls out, not 200.
    The count is taken once the first calls are in (however slow a loaded machine is to
    send them) and well before the lookups' timeout, after which more could go out."""
    nominatim.mode = "slow"
    options = {"domain": nominatim.domain, "scheme": "http", "user_agent": "dlr-gateway-tests"}
    configured = gateway_settings(
        geocoder="nominatim",
        geocoder_options=options,
        geocode_max_connections=4,
        geocode_timeout=4.0,
    )

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            transport = SimulatorTransport(app=new_simulator(configured))
            geocoding = Wiring(configured, stack, Metrics(), transport=transport).geocoding
            burst = asyncio.gather(
                *(geocoding.geocode(replace(NOWHERE, house_number=str(n))) for n in range(200)),
                return_exceptions=True,
            )
            await until(lambda: nominatim.calls("/search") >= 4, within=3.0)
            await asyncio.sleep(0.5)  # time for more to arrive, were any let out
            assert nominatim.calls("/search") == 4
            assert all(isinstance(o, GeocodingUnavailable) for o in await burst)

    asyncio.run(main())
