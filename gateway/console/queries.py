"""The console's reads of the state store: read-only, one page at a time, paged in the database.

Pages are keyset-paged on indexed columns (devices by ``aeui``, history by ``id`` under its
``(aeui, id)`` index, locations by ``location_id``), and a search by number or AEUI uses an
index, so those pages cost the same with 100 000 devices as with a thousand. Three reads
scan ``devices`` (no index serves them): the overview's counts by state (a state depends on
the clock), the failures list (unconfirmed writes), and a search for part of a caller name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from gateway.dlr.callers import normalize_number
from gateway.store.base import HistoryEntry, HistoryKind
from gateway.store.mapping import entry_of, from_us, to_us
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices, history, locations

EMERGENCY_QUERY = HistoryKind.EMERGENCY_QUERY.value
STATES = ("current", "pending", "failed", "stale")
_MAX_SEARCH = 100
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an unconfirmed write counts as failed, and a confirmed binding as stale (seconds)."""

    failed_after: float
    stale_after: float


@dataclass(frozen=True, slots=True)
class Device:
    aeui: str
    name: str
    number: str
    location_id: str
    address: dict[str, Any] | None
    latitude: float | None
    longitude: float | None
    precision: str | None
    source: str
    confirmed: bool
    applied_at: datetime
    last_heard: datetime
    state: str


@dataclass(frozen=True, slots=True)
class Location:
    location_id: str
    address: dict[str, Any] | None
    status: str | None
    latitude: float | None
    longitude: float | None
    created_at: datetime
    devices: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page and the key of the next (``None``: this was the last)."""

    items: list[T]
    next_key: str | None


def _loads(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _last_heard() -> sa.ColumnElement[int]:
    # heard_at may be left behind by an older release: the later of it and applied_at.
    return sa.case(
        (devices.c.heard_at > devices.c.applied_at, devices.c.heard_at),
        else_=devices.c.applied_at,
    )


def _state_expr(now: datetime, t: Thresholds) -> sa.ColumnElement[str]:
    failed_before = to_us(now - timedelta(seconds=t.failed_after))
    stale_before = to_us(now - timedelta(seconds=t.stale_after))
    return sa.case(
        (sa.and_(~devices.c.confirmed, devices.c.applied_at < failed_before), "failed"),
        (~devices.c.confirmed, "pending"),
        (_last_heard() < stale_before, "stale"),
        else_="current",
    )


_DEVICE_COLUMNS = (
    devices.c.aeui,
    devices.c.caller_name,
    devices.c.telephone_number,
    devices.c.location_id,
    devices.c.address,
    devices.c.latitude,
    devices.c.longitude,
    devices.c.coordinates_source,
    devices.c.coordinates_version,
    devices.c.version,
    devices.c.source,
    devices.c.confirmed,
    devices.c.applied_at,
)


def _device(row: Any) -> Device:
    # Coordinates the gateway established are trusted only at the version that set them.
    precision = row.coordinates_source if row.coordinates_version == row.version else None
    return Device(
        aeui=row.aeui,
        name=row.caller_name,
        number=row.telephone_number,
        location_id=row.location_id,
        address=_loads(row.address),
        latitude=row.latitude,
        longitude=row.longitude,
        precision=precision,
        source=row.source,
        confirmed=bool(row.confirmed),
        applied_at=from_us(row.applied_at),
        last_heard=from_us(row.last_heard),
        state=row.state,
    )


def _location(row: Any, devices: int) -> Location:
    return Location(
        location_id=row.location_id,
        address=_loads(row.address),
        status=row.status,
        latitude=row.latitude,
        longitude=row.longitude,
        created_at=from_us(row.created_at),
        devices=devices,
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConsoleQueries:
    """Read-only queries over the store's tables."""

    def __init__(self, store: SqlStateStore, thresholds: Thresholds) -> None:
        self.store = store
        self.thresholds = thresholds

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    async def _rows(self, query: sa.Executable) -> Sequence[Any]:
        async with self.store.transaction(read_only=True) as connection:
            return (await connection.execute(query)).all()

    async def _page(
        self,
        query: sa.Select[Any],
        key: sa.Column[Any],
        after: str | int | None,
        limit: int,
        *,
        newest_first: bool = False,
    ) -> tuple[Sequence[Any], str | None]:
        """A keyset page: the first ``limit`` rows past ``after`` in ``key``'s order, and the
        next page's key (the last row's ``key``; ``None`` when no row follows)."""
        if after is not None:
            query = query.where(key < after if newest_first else key > after)
        order: sa.ColumnElement[Any] = key.desc() if newest_first else key
        rows = await self._rows(query.order_by(order).limit(limit + 1))
        page = rows[:limit]
        return page, str(getattr(page[-1], key.name)) if len(rows) > limit else None

    async def state_counts(self) -> dict[str, int]:
        # One pass, summed per state: no grouping (a sort) of 100 000 rows.
        state = _state_expr(self.now(), self.thresholds)
        sums = [sa.func.sum(sa.case((state == name, 1), else_=0)) for name in STATES]
        (row,) = await self._rows(sa.select(*sums))
        return {name: int(value or 0) for name, value in zip(STATES, row, strict=True)}

    async def last_hour(self) -> dict[str, int]:
        """History rows of the last hour by kind (``history.at`` is indexed)."""
        since = to_us(self.now() - timedelta(hours=1))
        query = (
            sa.select(history.c.kind, sa.func.count())
            .where(history.c.at >= since)
            .group_by(history.c.kind)
        )
        return {kind: int(count) for kind, count in await self._rows(query)}

    def _select_devices(self) -> sa.Select[Any]:
        state = _state_expr(self.now(), self.thresholds).label("state")
        return sa.select(*_DEVICE_COLUMNS, _last_heard().label("last_heard"), state)

    async def devices(
        self,
        *,
        search: str = "",
        states: Sequence[str] = (),
        after: str | None = None,
        limit: int = 50,
    ) -> Page[Device]:
        """Devices in AEUI order: those matching ``search`` (a number, an AEUI or its start,
        or part of a caller name) and in one of ``states``, after the AEUI ``after``."""
        query = self._select_devices()
        search = search.strip()[:_MAX_SEARCH]
        if search:
            number = normalize_number(search)
            conditions: list[sa.ColumnElement[bool]] = [
                # A range, not LIKE: the primary key's index serves it on every backend.
                sa.and_(devices.c.aeui >= search, devices.c.aeui < search + "\U0010ffff"),
            ]
            if number is not None:
                # A callback number: its index, never a scan of the names.
                conditions.append(devices.c.telephone_number == number)
            else:
                # Part of a name: a scan (no index serves a substring), stopped by the page.
                name = sa.func.lower(devices.c.caller_name)
                conditions.append(name.like(_like(search.lower()), escape="\\"))
            query = query.where(sa.or_(*conditions))
        if states:
            state = _state_expr(self.now(), self.thresholds)
            query = query.where(state.in_(list(states)))
        rows, next_key = await self._page(query, devices.c.aeui, after, limit)
        return Page([_device(r) for r in rows], next_key)

    async def device(self, aeui: str) -> Device | None:
        rows = await self._rows(self._select_devices().where(devices.c.aeui == aeui))
        return _device(rows[0]) if rows else None

    async def mapped(self, *, after: str | None = None, limit: int = 1000) -> Page[Device]:
        """Devices with coordinates, in AEUI order."""
        query = self._select_devices().where(
            devices.c.latitude.is_not(None), devices.c.longitude.is_not(None)
        )
        rows, next_key = await self._page(query, devices.c.aeui, after, limit)
        return Page([_device(r) for r in rows], next_key)

    async def history(
        self,
        *,
        key: str | None = None,
        kind: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> Page[HistoryEntry]:
        """History rows, newest first: one key's (its ``(aeui, id)`` index), or one kind's."""
        query = sa.select(history)
        if key is not None:
            query = query.where(history.c.aeui == key)
        if kind is not None:
            query = query.where(history.c.kind == kind)
        rows, next_key = await self._page(query, history.c.id, before, limit, newest_first=True)
        return Page([entry_of(r, _loads) for r in rows], next_key)

    async def locations(self, *, after: str | None = None, limit: int = 50) -> Page[Location]:
        rows, next_key = await self._page(
            sa.select(locations), locations.c.location_id, after, limit
        )
        ids = [r.location_id for r in rows]
        counts: dict[str, int] = {}
        if ids:
            count_query = (
                sa.select(devices.c.location_id, sa.func.count())
                .where(devices.c.location_id.in_(ids))
                .group_by(devices.c.location_id)
            )
            counts = {lid: int(n) for lid, n in await self._rows(count_query)}
        return Page([_location(r, counts.get(r.location_id, 0)) for r in rows], next_key)
