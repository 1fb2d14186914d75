from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from gateway.bandwidth.models import Address
from gateway.dlr.binding import Binding
from gateway.store import Claim, open_store
from gateway.store import migrate as migrate_module
from gateway.store import sql as sql_module
from gateway.store.base import HistoryKind, HistoryRecord
from gateway.store.mapping import to_us
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices

T = TypeVar("T")

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def phone_of(aeui: str) -> str:
    """A callback number of the device's own (a number has one owner unless shared)."""
    return f"+1919{zlib.crc32(aeui.encode()) % 9_000_000 + 1_000_000:07d}"


def binding(
    aeui: str = "device-1",
    location_id: str = "LOC1",
    *,
    observed: float = 0,
    caller_name: str = "Ada",
    source: str = "report",
    phone: str | None = None,
) -> Binding:
    return Binding(
        aeui=aeui,
        carrier_endpoint_id=f"ep-{aeui}",
        location_id=location_id,
        address=Address(house_number="1", street_name=location_id, city="RALEIGH"),
        caller_name=caller_name,
        telephone_number=phone or phone_of(aeui),
        observed_at=at(observed),
        source=source,
        latitude=35.7,
        longitude=-78.6,
    )


async def applied(store: SqlStateStore, b: Binding, credential: str = "device") -> Claim:
    """A report the carrier took, as the pipeline records it: claimed, then confirmed with
    its history record."""
    claim = await store.claim(b, credential=credential)
    assert claim.won
    await store.confirm(b.aeui, claim.current.version, record=taken(claim, credential))
    return claim


def taken(claim: Claim, credential: str = "device") -> HistoryRecord:
    """The history record of a claimed binding the carrier took, as the pipeline makes it."""
    current = claim.current
    return HistoryRecord(
        current.aeui,
        HistoryKind.APPLIED,
        credential,
        current.source,
        None if claim.previous is None else claim.previous.as_json(),
        current.as_json(),
        current.observed_at,
    )


async def seed(store: SqlStateStore, count: int, *, observed: float = 0) -> list[str]:
    """``count`` devices, inserted in one statement (set-up, not the code under test)."""
    aeuis = [f"dev-{i:05d}" for i in range(count)]
    rows = [
        {
            "aeui": aeui,
            "endpoint_id": f"ep-{aeui}",
            "location_id": "LOC1",
            "address": None,
            "caller_name": "Ada",
            "telephone_number": "+19195550100",
            "observed_at": to_us(at(observed)),
            "source": "report",
            "applied_at": to_us(at(observed)),
            "confirmed": False,
            "latitude": None,
            "longitude": None,
            "version": 1,
        }
        for aeui in aeuis
    ]
    async with store.engine.begin() as connection:
        await connection.execute(sa.insert(devices), rows)
    return aeuis


def count_statements(store: SqlStateStore, prefix: str) -> list[str]:
    """Every statement starting with ``prefix`` that ``store`` sends from now on."""
    seen: list[str] = []

    @sa.event.listens_for(store.engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(prefix.upper()):
            seen.append(statement)

    return seen


def as_release(monkeypatch: pytest.MonkeyPatch, revision: str) -> None:
    """This process runs as the release whose migrations end at ``revision`` (the release
    before a migration, rolled back onto the schema the migration made)."""
    for module in (migrate_module, sql_module):
        monkeypatch.setattr(module, "head_revision", lambda: revision)


@contextlib.asynccontextmanager
async def previous_release_store(
    url: str, head: str, *, create: bool, aeui: str
) -> AsyncIterator[SqlStateStore]:
    """A store opened by that release (``as_release``): it starts on the newer schema,
    leaves it as it was (at ``head``) and does its work (a device's claim)."""
    async with await open_store(url, create=create) as store:
        assert isinstance(store, SqlStateStore)
        assert (await store.claim(binding(aeui), credential="t")).won
        assert await store.revision() == head  # left as it was
        yield store
