"""Test doubles: a fake clock and an in-memory, counting geopy geocoder."""

from __future__ import annotations

import asyncio
from typing import Any

from geopy.adapters import BaseAsyncAdapter
from geopy.geocoders.base import Geocoder
from geopy.location import Location


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _NoHttp(BaseAsyncAdapter):  # type: ignore[misc]
    async def get_json(self, url: str, **kwargs: Any) -> Any:
        raise AssertionError("no HTTP here")

    async def get_text(self, url: str, **kwargs: Any) -> str:
        raise AssertionError("no HTTP here")


class CountingGeocoder(Geocoder):  # type: ignore[misc]
    """An in-memory async geopy geocoder that counts calls; ``error`` makes every call fail,
    ``gate`` (an asyncio.Event) holds calls until it is set."""

    def __init__(self) -> None:
        super().__init__(adapter_factory=_NoHttp)
        self.queries: list[Any] = []
        self.reverses: list[Any] = []
        self.error: Exception | None = None
        self.found = True
        self.gate: asyncio.Event | None = None

    async def _answer(self, point: tuple[float, float], raw: dict[str, Any]) -> Location | None:
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        if not self.found:
            return None
        return Location("somewhere", point, raw)

    async def geocode(self, query: Any, **kwargs: Any) -> Location | None:
        self.queries.append(query)
        return await self._answer((38.8977, -77.0365), {"precision": "street"})

    async def reverse(self, query: Any, **kwargs: Any) -> Location | None:
        self.reverses.append(query)
        raw = {
            "address": {
                "house_number": "1600",
                "road": "Pennsylvania Avenue Northwest",
                "city": "Washington",
                "state": "District of Columbia",
                "postcode": "20500-0003",
                "country_code": "us",
            }
        }
        return await self._answer((38.8977, -77.0365), raw)
