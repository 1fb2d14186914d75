"""The batched ``advance`` and ``confirm`` through SQLAlchemy Core, on any dialect.

``gateway.store.driver`` runs the same operations on the drivers themselves, which is
faster; these are what it is tested against (``driver_sql=False`` runs them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.base import HistoryKind, HistoryRecord
from gateway.store.mapping import TAKEN_KINDS, may_use_number, overtaken_record, record_values
from gateway.store.tables import devices, history


async def advance_rows(
    connection: AsyncConnection, batch: Sequence[tuple[str, tuple[int, int | None]]], now: int
) -> set[str]:
    """Move each device's ``observed_at`` forward (``Ledger.advance``); answers those moved."""
    moved: set[str] = set()
    for aeui, (observed_at, version) in batch:
        where = [
            devices.c.aeui == aeui,
            devices.c.observed_at <= observed_at,
            sa.or_(devices.c.ordered_at.is_(None), devices.c.ordered_at <= observed_at),
            may_use_number(),
        ]
        if version is not None:
            where.append(devices.c.version == version)
        result = await connection.execute(
            sa.update(devices)
            .where(*where)
            .values(observed_at=observed_at, heard_at=now)
            .returning(devices.c.aeui)
        )
        if result.first() is not None:
            moved.add(aeui)
    return moved


async def confirm_rows(
    connection: AsyncConnection,
    batch: Sequence[tuple[str, tuple[int, HistoryRecord | None]]],
    now: int,
) -> set[str]:
    """Confirm each device's claimed version, with its history record (``Ledger.confirm``);
    answers those confirmed. The records of those a newer claim overtook are considered
    after, in the batch's order (``record_overtaken``), as the driver paths do."""
    confirmed: set[str] = set()
    for aeui, (version, record) in batch:
        result = await connection.execute(
            sa.update(devices)
            .where(devices.c.aeui == aeui, devices.c.version == version)
            .values(confirmed=True, checked_at=now)
            .returning(devices.c.aeui)
        )
        if result.first() is None:
            continue
        confirmed.add(aeui)
        if record is not None:
            values = record_values(record, now)
            if not (record.kind == HistoryKind.APPLIED and await _taken_once(connection, values)):
                await connection.execute(sa.insert(history).values(values))
    for aeui, (version, record) in batch:
        if aeui not in confirmed and overtaken_record(record):
            await record_overtaken(connection, aeui, version, record, now)
    return confirmed


async def _taken_once(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Whether the history already records this taking (``SAME_TAKING_SQL``)."""
    if values["observed_at"] is None:
        return False  # as in SQL, where NULL equals nothing
    same = sa.exists().where(
        history.c.aeui == values["aeui"],
        history.c.kind.in_(TAKEN_KINDS),
        history.c.observed_at == values["observed_at"],
        history.c.to_json == values["to_json"],
    )
    return bool(await connection.scalar(sa.select(same)))


async def record_overtaken(
    connection: AsyncConnection, aeui: str, version: int, record: HistoryRecord, now: int
) -> None:
    """The history record of a write the carrier took though a newer claim overtook it
    (``Ledger.confirm``): appended if the device's row is at a newer version, locked until
    the transaction ends (whoever confirms it waits, and records after this), and no entry of
    ``TAKEN_KINDS`` records an observation as new."""
    newer_claim = await connection.execute(
        sa.select(devices.c.aeui)
        .where(devices.c.aeui == aeui, devices.c.version > version)
        .with_for_update()
    )
    if newer_claim.first() is None:
        return
    values = record_values(record, now)
    newer_entry = sa.exists().where(
        history.c.aeui == aeui,
        history.c.kind.in_(TAKEN_KINDS),
        history.c.observed_at >= values["observed_at"],
    )
    if not await connection.scalar(sa.select(newer_entry)):
        await connection.execute(sa.insert(history).values(values))
