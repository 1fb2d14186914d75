"""HttpxAdapter against httpx.MockTransport: geopy's error contract, size bound, parse errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from geopy.adapters import AdapterHTTPError
from geopy.exc import (
    GeocoderParseError,
    GeocoderRateLimited,
    GeocoderServiceError,
    GeocoderTimedOut,
    GeocoderUnavailable,
)
from geopy.geocoders import Nominatim

from gateway.geocoding import HttpxAdapter, adapter_factory

URL = "http://geo.test/search?q=x"


def call(
    handler: Callable[[httpx.Request], httpx.Response],
    method: str = "get_json",
    **adapter_kw: Any,
) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            adapter = HttpxAdapter(client=client, proxies={}, ssl_context=None, **adapter_kw)
            async with adapter:
                result = await getattr(adapter, method)(
                    URL, timeout=1.0, headers={"User-Agent": "t"}
                )
            assert not client.is_closed  # the adapter does not own the client
            return result

    return asyncio.run(main())


def test_json_and_text_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"lat": "1"}])

    assert call(handler) == [{"lat": "1"}]
    assert call(handler, "get_text") == '[{"lat":"1"}]'
    assert seen[0].headers["user-agent"] == "t"
    assert str(seen[0].url) == URL


def test_non_2xx_is_adapter_http_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "9"}, text="slow down" * 1000)

    with pytest.raises(AdapterHTTPError) as caught:
        call(handler)
    assert caught.value.status_code == 429
    assert caught.value.headers["retry-after"] == "9"
    assert caught.value.text.startswith("slow down")
    assert len(caught.value.text) <= 4096


def test_invalid_json_is_a_parse_error() -> None:
    with pytest.raises(GeocoderParseError):
        call(lambda request: httpx.Response(200, text="<html>not json</html>"))
    with pytest.raises(GeocoderParseError):
        call(lambda request: httpx.Response(200, content=b"\xff\xfe\xfa"), "get_text")


def test_response_size_is_bounded() -> None:
    big = b"[" + b"1," * 600_000 + b"1]"
    with pytest.raises(GeocoderServiceError, match="large"):
        call(lambda request: httpx.Response(200, content=big))

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"[1" + b",1" * 40, b",1" * 40, b"]"):
            yield chunk

    def streamed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    with pytest.raises(GeocoderServiceError, match="larger than 100"):
        call(streamed, max_response_bytes=100)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectTimeout("slow"), GeocoderTimedOut),
        (httpx.ReadTimeout("slow"), GeocoderTimedOut),
        (httpx.PoolTimeout("full"), GeocoderTimedOut),
        (httpx.ConnectError("refused"), GeocoderUnavailable),
        (httpx.RemoteProtocolError("dropped"), GeocoderUnavailable),
        (httpx.DecodingError("bad gzip"), GeocoderServiceError),
    ],
)
def test_httpx_errors_become_geopy_errors(raised: Exception, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    with pytest.raises(expected) as caught:
        call(handler)
    assert caught.value.__cause__ is raised


def test_overall_timeout_is_timed_out() -> None:
    async def main() -> None:
        async def handler(request: httpx.Request) -> httpx.Response:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            adapter = HttpxAdapter(client=client, proxies={}, ssl_context=None)
            with pytest.raises(GeocoderTimedOut):
                await adapter.get_json(URL, timeout=0.005, headers={})

    asyncio.run(main())


def test_geopy_maps_statuses_through_its_own_table() -> None:
    """The adapter raises AdapterHTTPError; geopy's Geocoder turns 429 into GeocoderRateLimited."""

    async def main() -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(429, headers={"Retry-After": "12"}, json={"error": "x"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            geocoder = Nominatim(
                domain="geo.test",
                scheme="http",
                user_agent="t",
                adapter_factory=adapter_factory(client),
            )
            with pytest.raises(GeocoderRateLimited) as caught:
                await geocoder.geocode("x")
            assert caught.value.retry_after == 12

    asyncio.run(main())
