"""Cached, single-flight, rate-limited geocoding over any geopy geocoder, each call bounded
by ``GEOCODE_TIMEOUT`` (docs/architecture.md, "Geocoder answers")."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any, TypeAlias

import httpx
from cachetools import TLRUCache
from geopy.exc import ConfigurationError, GeocoderNotFound, GeocoderRateLimited, GeopyError
from geopy.geocoders import SERVICE_TO_GEOCODER, get_geocoder_for_service
from geopy.point import Point

from gateway.bandwidth.models import Address
from gateway.concurrency import SingleFlight
from gateway.geocoding import providers
from gateway.geocoding.adapter import adapter_factory
from gateway.geocoding.offline import OfflineGeocoder, zip_index
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision
from gateway.geocoding.sandbox import SandboxGeocoder
from gateway.metrics import Metrics
from gateway.settings import Settings, SettingsError
from gateway.settings.geocoding import GeocodingSettings

__all__ = [
    "GeocodeResult",
    "Geocoding",
    "GeocodingUnavailable",
    "Precision",
    "build_geocoding",
]

logger = logging.getLogger(__name__)

#: Decimal places of a reverse-geocoding cache key: 1e-5 degree is about 1.1 m.
COORDINATE_DECIMALS = 5

Answer: TypeAlias = GeocodeResult | None
Cache: TypeAlias = TLRUCache[Hashable, Answer, float]


class RateLimiter:
    """Spaces calls ``1 / rate`` seconds apart; safe across tasks (no await between read and
    update)."""

    def __init__(
        self,
        rate: float,
        *,
        timer: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._timer = timer
        self._sleep = sleep
        self._next = -math.inf

    async def acquire(self, within: float = math.inf) -> bool:
        """Wait for the next turn; ``False``, at once and with no turn taken, when it is more
        than ``within`` seconds away."""
        if not self.interval:
            return True
        now = self._timer()
        slot = max(now, self._next)
        if slot - now > within:
            return False
        self._next = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)
        return True


class Geocoding:
    """``geocoder`` (named ``provider``) behind the caches, rate limit and timeout of
    ``settings`` (a ``Settings`` or just its ``GeocodingSettings``)."""

    def __init__(
        self,
        geocoder: Any,
        provider: str,
        settings: GeocodingSettings,
        *,
        metrics: Metrics,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.geocoder = geocoder
        self.provider = provider
        self.settings = settings
        self.timeout = settings.geocode_timeout
        self._metrics = metrics
        self._timer = timer
        self._limiter = RateLimiter(settings.geocode_rate_limit, timer=timer, sleep=sleep)
        self._forward: Cache = TLRUCache(settings.geocode_cache_size, self._expiry, timer)
        self._reverse: Cache = TLRUCache(settings.geocode_cache_size, self._expiry, timer)
        self._inflight: SingleFlight[tuple[str, Hashable], Answer] = SingleFlight()

    def _expiry(self, _key: Hashable, value: Answer, now: float) -> float:
        if value is None:
            return now + self.settings.geocode_negative_ttl
        return now + self.settings.geocode_cache_ttl

    async def geocode(self, address: Address) -> GeocodeResult | None:
        """Coordinates for a normalized address; ``None`` when the provider knows none."""
        key = address
        if address.address_line2 is not None or address.plus_four is not None:
            # A copy only when it differs: the cache keeps its key, one per address.
            key = dataclasses.replace(address, address_line2=None, plus_four=None)
        return await self._lookup("geocode", self._forward, key, partial(self._forward_call, key))

    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None:
        """The provider's civic address nearest to a point; ``None`` when it has none."""
        if not (
            math.isfinite(latitude)
            and math.isfinite(longitude)
            and -90 <= latitude <= 90
            and -180 <= longitude <= 180
        ):
            raise ValueError(f"not a coordinate pair: {latitude!r}, {longitude!r}")
        key = (
            round(latitude, COORDINATE_DECIMALS) + 0.0,
            round(longitude, COORDINATE_DECIMALS) + 0.0,
        )
        return await self._lookup(
            "reverse_geocode", self._reverse, key, partial(self._reverse_call, *key)
        )

    # --- provider calls ----------------------------------------------------------------------

    async def _forward_call(self, address: Address) -> Answer:
        query = providers.forward_query(self.geocoder, address)
        location = await _resolve(
            self.geocoder.geocode(query, **providers.forward_options(self.geocoder))
        )
        if location is None or location.latitude is None or location.longitude is None:
            return None
        latitude, longitude = float(location.latitude), float(location.longitude)
        centre = zip_index().get(address.zip) if address.zip else None
        why = providers.elsewhere(
            address,
            location.raw,
            latitude,
            longitude,
            (centre.latitude, centre.longitude) if centre is not None else None,
        )
        if why is not None:
            # Some other place's coordinates must never locate this address: not found.
            logger.warning("geocoder %s answered another place, not used: %s", self.provider, why)
            return None
        return GeocodeResult(
            latitude=latitude,
            longitude=longitude,
            precision=providers.precision_of(location.raw),
            provider=self.provider,
        )

    async def _reverse_call(self, latitude: float, longitude: float) -> Answer:
        location = await _resolve(self.geocoder.reverse(Point(latitude, longitude)))
        if location is None or location.latitude is None or location.longitude is None:
            return None
        address = providers.civic_address(location.raw)
        return GeocodeResult(
            latitude=float(location.latitude),
            longitude=float(location.longitude),
            precision=providers.reverse_precision(address),
            provider=self.provider,
            address=address,
        )

    # --- cache, single flight, limits, errors -------------------------------------------------

    async def _lookup(
        self,
        name: str,
        cache: Cache,
        key: Hashable,
        call: Callable[[], Awaitable[Answer]],
    ) -> Answer:
        start = self._timer()
        try:
            answer = cache[key]
        except KeyError:
            pass
        else:
            self._metrics.cache_lookups.labels(cache=name, result="hit").inc()
            self._observe("hit", start)
            return answer
        self._metrics.cache_lookups.labels(cache=name, result="miss").inc()
        try:
            answer = await self._inflight.do((name, key), partial(self._fill, cache, key, call))
        except GeocodingUnavailable:
            self._observe("error", start)
            raise
        self._observe("miss", start)
        return answer

    def _observe(self, outcome: str, start: float) -> None:
        elapsed = max(self._timer() - start, 0.0)
        self._metrics.geocode_duration.labels(provider=self.provider, cache=outcome).observe(
            elapsed
        )

    async def _fill(
        self, cache: Cache, key: Hashable, call: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        answer = await self._bounded(call)
        if cache.maxsize > 0:
            cache[key] = answer
        return answer

    async def _bounded(self, call: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            async with asyncio.timeout(self.timeout):
                if not await self._limiter.acquire(within=self.timeout):
                    raise GeocodingUnavailable(
                        f"{self.provider}: GEOCODE_RATE_LIMIT leaves no call within"
                        f" {self.timeout} s"
                    )
                return await call()
        except GeocodingUnavailable:
            raise
        except GeocoderRateLimited as exc:
            retry_after = float(exc.retry_after) if exc.retry_after is not None else None
            raise GeocodingUnavailable(
                f"{self.provider} is rate-limiting us: {exc}", retry_after=retry_after
            ) from exc
        except GeopyError as exc:
            raise GeocodingUnavailable(f"{self.provider}: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise GeocodingUnavailable(
                f"{self.provider} did not answer within {self.timeout} s"
            ) from exc
        except Exception as exc:
            # A provider answer geopy could not read (or a bug there): still only an outage.
            logger.exception("geocoder %s failed unexpectedly", self.provider)
            raise GeocodingUnavailable(f"{self.provider} failed: {type(exc).__name__}") from exc


async def _resolve(answer: Any) -> Any:
    """geopy answers a coroutine in async mode; the offline geocoder answers directly."""
    if inspect.isawaitable(answer):
        return await answer
    return answer


def build_geocoding(
    settings: Settings,
    metrics: Metrics,
    client: httpx.AsyncClient,
    *,
    timer: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Geocoding:
    """The configured geocoder (``GEOCODER``, ``GEOCODER_OPTIONS``) behind caches and limits.

    ``offline`` is the bundled ZIP geocoder (in sandbox mode with ``gateway.geocoding.sandbox``'s
    few street-level places); any other name is a geopy service, built with
    ``GEOCODER_OPTIONS`` as keyword arguments and all its HTTP going through ``client``.
    """
    name = settings.geocoder.strip().lower()
    geocoder: Any
    if name == "offline":
        # The sandbox adds street-level reverse answers near a few places (GPS-only reports).
        geocoder = SandboxGeocoder() if settings.sandbox else OfflineGeocoder()
    else:
        try:
            cls = get_geocoder_for_service(name)
        except GeocoderNotFound:
            known = ", ".join(["offline", *sorted(SERVICE_TO_GEOCODER)])
            raise SettingsError(
                f"GEOCODER={settings.geocoder!r} is not a known geocoder; use one of: {known}"
            ) from None
        options = dict(settings.geocoder_options)
        options.setdefault("timeout", settings.geocode_timeout)
        options["adapter_factory"] = adapter_factory(client)
        try:
            geocoder = cls(**options)
        except (TypeError, ValueError, ConfigurationError) as exc:
            raise SettingsError(
                f"GEOCODER_OPTIONS do not configure the {name} geocoder: {exc}"
            ) from None
    return Geocoding(geocoder, name, settings, metrics=metrics, timer=timer, sleep=sleep)
