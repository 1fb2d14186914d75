"""v2 list reads page: the simulator honours ``limit``/``offset`` (1000 by default and at
most), and the client follows the pages to the end, bounded against a list that never ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gateway.bandwidth.errors import UpstreamParseError, UpstreamTimeout
from gateway.bandwidth.v2.models import AddressAnswer, ValidationStatus
from gateway.simulator.v2.store import PAGE_LIMIT, _Endpoint

from .helpers import V2, v2

PATH = "/api/v2/accounts/{account}/emergency"


def _addresses(h: V2, n: int) -> None:
    for i in range(n):
        key = f"a{i:05d}"
        h.simulator.v2.addresses[key] = AddressAnswer(
            id=key, validation_status=ValidationStatus.VALID, city="WASHINGTON"
        )


def _endpoints(h: V2, n: int, address_id: str = "a00000") -> None:
    for i in range(n):
        key = f"e{i:05d}"
        h.simulator.v2.endpoints[key] = _Endpoint(
            key, "+12025550143", f"N{i}", None, None, address_id, "", ""
        )


def _get(h: V2, collection: str, query: str = "") -> httpx.Response:
    account = h.simulator.config.account_id

    async def go() -> httpx.Response:
        auth = (h.simulator.config.username, h.simulator.config.password)
        async with httpx.AsyncClient(
            transport=h.transport.inner, base_url="http://carrier.test", auth=auth
        ) as http:
            return await http.get(PATH.format(account=account) + collection + query)

    return asyncio.run(go())


def test_the_simulator_pages_by_1000_with_links_and_caps_the_limit() -> None:
    h = v2()
    _addresses(h, 2500)
    first = _get(h, "/addresses").json()
    assert len(first["addresses"]) == PAGE_LIMIT == 1000
    links = {k["rel"]: k["href"] for k in first["links"]}
    assert links["next"] == "/addresses?offset=1000&limit=1000"
    assert links["prev"] == "" and links["last"] == "/addresses?offset=2000&limit=1000"
    # A limit above the most is answered with the most.
    assert len(_get(h, "/addresses", "?limit=5000").json()["addresses"]) == 1000
    last = _get(h, "/addresses", "?offset=2000&limit=1000").json()
    assert [a["id"] for a in last["addresses"]][:1] == ["a02000"]
    assert len(last["addresses"]) == 500
    assert {k["rel"]: k["href"] for k in last["links"]}["next"] == ""
    small = _get(h, "/addresses", "?offset=10&limit=3").json()
    assert [a["id"] for a in small["addresses"]] == ["a00010", "a00011", "a00012"]
    assert _get(h, "/addresses", "?offset=9999").json()["addresses"] == []


@pytest.mark.parametrize("query", ["?limit=0", "?limit=x", "?offset=-1", "?limit=%D9%A3"])
def test_the_simulator_refuses_a_limit_or_offset_that_is_no_whole_number(query: str) -> None:
    h = v2()
    answer = _get(h, "/notifications", query)
    assert answer.status_code == 400
    assert "must be a whole number" in answer.json()["errors"][0]["description"]


def test_the_simulator_filters_endpoints_by_address() -> None:
    h = v2()
    _addresses(h, 2)
    _endpoints(h, 3)
    h.simulator.v2.endpoints["e00001"].address_id = "a00001"
    found = _get(h, "/endpoints", "?addressId=a00001").json()["endpoints"]
    assert [e["id"] for e in found] == ["e00001"]


def test_every_list_read_follows_the_pages_to_the_end() -> None:
    h = v2()
    _addresses(h, 2345)
    _endpoints(h, 2001)

    async def go() -> None:
        locations = await h.client.list_locations()
        endpoints = await h.client.list_endpoints()
        assert len({loc.location_id for loc in locations.locations}) == 2345
        assert locations.total_count == 2345
        assert len({e.endpoint_id for e in endpoints.endpoints}) == 2001

    asyncio.run(go())
    assert h.operations().count("listAddresses") == 3
    # The last page's links name no next page: no empty read after it.
    assert h.operations().count("listAllEndpoints") == 3
    offsets = [p for m, p, _ in h.transport.sent if p.endswith("/addresses")]
    assert len(offsets) == 3


def test_a_page_size_the_client_chooses_is_sent_as_limit_and_offset() -> None:
    h = v2()
    _addresses(h, 7)
    seen: list[str] = []
    inner = h.transport.inner

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.query.decode())
            return await inner.handle_async_request(request)

    h.transport.inner = Spy()
    h.client.page_size = 3
    found = asyncio.run(h.client.list_locations())
    assert len(found.locations) == 7
    assert seen == ["limit=3&offset=0", "limit=3&offset=3", "limit=3&offset=6"]


def _carrier(answer: Any) -> V2:
    h = v2()
    h.transport.inner = httpx.MockTransport(answer)
    return h


def test_a_carrier_whose_list_never_ends_is_bounded() -> None:
    calls: list[str] = []

    def endless(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        offset = int(request.url.params["offset"])
        page = [{"id": f"n{offset + i}", "type": "EMAIL", "recipient": "a@b.co"} for i in range(2)]
        return httpx.Response(200, json={"addresses": [{"id": p["id"]} for p in page]})

    h = _carrier(endless)
    h.client.max_pages = 5
    with pytest.raises(UpstreamParseError, match="did not end within 5 pages"):
        asyncio.run(h.client.list_locations())
    assert len(calls) == 5


def test_a_carrier_that_answers_the_same_page_forever_is_caught_at_once() -> None:
    calls: list[str] = []

    def same(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        links = [{"rel": "next", "href": "/endpoints?offset=0&limit=1000"}]
        return httpx.Response(200, json={"links": links, "endpoints": [{"id": "e1"}]})

    h = _carrier(same)
    with pytest.raises(UpstreamParseError, match="only records already listed"):
        asyncio.run(h.client.list_endpoints())
    assert len(calls) == 2


def test_a_next_link_past_the_end_stops_at_the_empty_page() -> None:
    def lying(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        found = [{"id": "x1"}, {"id": "x2"}] if offset == 0 else []
        links = [{"rel": "next", "href": "/addresses?offset=2&limit=1000"}]
        return httpx.Response(200, json={"links": links, "addresses": found})

    h = _carrier(lying)
    found = asyncio.run(h.client.list_locations())
    assert [loc.location_id for loc in found.locations] == ["x1", "x2"]


def test_a_page_of_the_wrong_shape_is_a_parse_error() -> None:
    def wrong(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"endpoints": {"id": "e1"}}).encode())

    with pytest.raises(UpstreamParseError):
        asyncio.run(_carrier(wrong).client.list_endpoints())


def test_a_slow_carrier_cannot_make_a_list_read_last_forever() -> None:
    h = v2()

    def slow(request: httpx.Request) -> httpx.Response:
        h.time.now += 7.0  # each page takes seven seconds of the client's clock
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"addresses": [{"id": f"s{offset}"}]})

    h.transport.inner = httpx.MockTransport(slow)
    h.client.list_deadline = 20.0
    with pytest.raises(UpstreamTimeout, match="did not end in time"):
        asyncio.run(h.client.list_locations())
    assert h.time.now - 1000.0 <= 28.0
