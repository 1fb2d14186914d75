"""A Nominatim-shaped provider on loopback: ``/search`` and ``/reverse``, json/jsonv2 shapes.

Its behaviour is switched per test through ``FakeNominatim.mode``; every request is recorded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. https://osm.org/copyright"

WHITE_HOUSE_ADDRESS = {
    "office": "White House",
    "house_number": "1600",
    "road": "Pennsylvania Avenue Northwest",
    "quarter": "Ward 2",
    "city": "Washington",
    "state": "District of Columbia",
    "ISO3166-2-lvl4": "US-DC",
    "postcode": "20500",
    "country": "United States",
    "country_code": "us",
}


def _place(
    *,
    lat: str,
    lon: str,
    category: str,
    kind: str,
    addresstype: str,
    rank: int,
    name: str,
    address: dict[str, str],
    details: bool,
    v2: bool,
) -> dict[str, Any]:
    place: dict[str, Any] = {
        "place_id": 330_000_000 + rank,
        "licence": LICENCE,
        "osm_type": "way",
        "osm_id": 238_241_022,
        "lat": lat,
        "lon": lon,
        ("category" if v2 else "class"): category,
        "type": kind,
        "place_rank": rank,
        "importance": 0.61,
        "addresstype": addresstype,
        "name": name,
        "display_name": ", ".join(address.values()),
        "boundingbox": [lat, lat, lon, lon],
    }
    if details:
        place["address"] = address
    return place


def house(details: bool, v2: bool) -> dict[str, Any]:
    return _place(
        lat="38.8976997",
        lon="-77.0365532",
        category="office",
        kind="government",
        addresstype="office",
        rank=30,
        name="White House",
        address=WHITE_HOUSE_ADDRESS,
        details=details,
        v2=v2,
    )


def postcode(details: bool, v2: bool) -> dict[str, Any]:
    return _place(
        lat="38.8946",
        lon="-77.0355",
        category="place",
        kind="postcode",
        addresstype="postcode",
        rank=21,
        name="20500",
        address={"postcode": "20500", "country": "United States", "country_code": "us"},
        details=details,
        v2=v2,
    )


def city(details: bool, v2: bool) -> dict[str, Any]:
    return _place(
        lat="38.8950368",
        lon="-77.0365427",
        category="boundary",
        kind="administrative",
        addresstype="city",
        rank=16,
        name="Washington",
        address={"city": "Washington", "ISO3166-2-lvl4": "US-DC", "country_code": "us"},
        details=details,
        v2=v2,
    )


@dataclass
class FakeNominatim:
    port: int = 0
    #: "ok", "empty", "slow", "500", "503", "429".
    mode: str = "ok"
    retry_after: str = "7"
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    def reset(self) -> None:
        self.mode = "ok"
        self.requests.clear()
        self.release.clear()

    async def _failure(self) -> Response | None:
        if self.mode == "slow":
            # Held until the test ends (the fixture sets ``release``), at most 5 s.
            await asyncio.to_thread(self.release.wait, 5.0)
            return JSONResponse([])
        if self.mode in ("500", "503"):
            return Response("<html>upstream broke</html>", status_code=int(self.mode))
        if self.mode == "429":
            return JSONResponse(
                {"error": "Too many requests"},
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        return None

    def _record(self, request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        self.requests.append((request.url.path, params, request.headers.get("user-agent", "")))
        return params

    async def search(self, request: Request) -> Response:
        params = self._record(request)
        failure = await self._failure()
        if failure is not None:
            return failure
        details = params.get("addressdetails") == "1"
        v2 = params.get("format") == "jsonv2"
        text = " ".join(params.get(k, "") for k in ("q", "street")).upper()
        if self.mode == "empty" or "NOWHERE" in text:
            return JSONResponse([])
        if "1600" in text:
            return JSONResponse([house(details, v2)])
        if params.get("postalcode") and not params.get("street"):
            return JSONResponse([postcode(details, v2)])
        return JSONResponse([city(details, v2)])

    async def reverse(self, request: Request) -> Response:
        params = self._record(request)
        failure = await self._failure()
        if failure is not None:
            return failure
        details = params.get("addressdetails") == "1"
        v2 = params.get("format") == "jsonv2"
        if self.mode == "empty" or float(params.get("lat", "0")) < 0:
            return JSONResponse({"error": "Unable to geocode"})
        return JSONResponse(house(details, v2))

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/search", self.search), Route("/reverse", self.reverse)],
        )


class Running:
    """The fake served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, fake: FakeNominatim) -> None:
        self.fake = fake
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        fake.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            fake.app(),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> FakeNominatim:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake Nominatim did not start")
            time.sleep(0.001)
        return self.fake

    def __exit__(self, *_: object) -> None:
        self.fake.release.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
