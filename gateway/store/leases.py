"""Reconcilers' leases on devices' rows, in the state store's transactions.

A reconciler leases the devices it checks, so that replicas check different ones; a lease
that expires (a killed replica) frees its rows for another. ``SqlStateStore.lease``,
``release`` and ``checked`` run these in their units of work.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.dlr.binding import Binding
from gateway.store.base import LeaseFilters
from gateway.store.mapping import binding_of, to_us
from gateway.store.tables import devices


def _free(now: int, filters: LeaseFilters) -> list[sa.ColumnElement[bool]]:
    """What a device must be to be leased: no live lease on it, and as ``filters`` say."""
    free = [sa.or_(devices.c.lease_until.is_(None), devices.c.lease_until <= now)]
    if (older_than := filters.get("older_than")) is not None:
        free.append(
            sa.or_(devices.c.checked_at.is_(None), devices.c.checked_at < to_us(older_than))
        )
    if filters.get("only_unconfirmed"):
        free.append(devices.c.confirmed.is_(False))
    if (applied_before := filters.get("applied_before")) is not None:
        free.append(devices.c.applied_at < to_us(applied_before))
    if (since := filters.get("skip_unconfirmed_since")) is not None:
        free.append(sa.or_(devices.c.confirmed.is_(True), devices.c.applied_at < to_us(since)))
    return free


async def take_leases(
    connection: AsyncConnection,
    owner: str,
    *,
    limit: int,
    now: int,
    until: int,
    filters: LeaseFilters,
) -> list[Binding]:
    """Lease up to ``limit`` free devices to ``owner`` until ``until``, least recently
    checked first (``StateStore.lease``)."""
    free = _free(now, filters)
    # The queue pattern: lock the candidates, skipping rows another replica is leasing
    # right now (PostgreSQL; SQLite's write lock already excludes everyone).
    candidates = (
        sa.select(devices.c.aeui)
        .where(*free)
        .order_by(devices.c.checked_at.asc().nulls_first(), devices.c.aeui)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
    )
    rows = list(
        await connection.execute(
            sa.update(devices)
            .where(devices.c.aeui == candidates.c.aeui, *free)
            .values(lease_owner=owner, lease_until=until)
            .returning(*devices.c)
        )
    )
    rows.sort(key=lambda row: (row.checked_at is not None, row.checked_at or 0, row.aeui))
    return [binding_of(row) for row in rows]


async def release_lease(connection: AsyncConnection, aeui: str, owner: str) -> bool:
    """Free ``owner``'s lease on the device; False when it holds none."""
    result = await connection.execute(
        sa.update(devices)
        .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
    return bool(result.rowcount)


async def record_check(
    connection: AsyncConnection,
    aeui: str,
    owner: str,
    confirmed: bool | None,
    *,
    version: int | None,
    now: int,
) -> bool:
    """Record ``owner``'s check of the device and free its lease (``StateStore.checked``)."""
    confirmed_value: sa.ColumnElement[bool] | bool
    if confirmed is None:
        confirmed_value = devices.c.confirmed
    elif version is None:
        confirmed_value = confirmed
    else:
        confirmed_value = sa.case(
            (devices.c.version == version, sa.literal(confirmed)), else_=devices.c.confirmed
        )
    result = await connection.execute(
        sa.update(devices)
        .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
        .values(checked_at=now, confirmed=confirmed_value, lease_owner=None, lease_until=None)
    )
    return bool(result.rowcount)
