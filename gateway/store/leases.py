"""Reconcilers' leases on devices' rows, in the state store's transactions.

A reconciler leases the devices it checks, so that replicas check different ones; a lease
that expires (a killed replica) frees its rows for another. ``SqlStateStore.lease``,
``release`` and ``checked`` run these as units of their own (``run_unit``: on SQLite the
whole unit on the driver's thread in one hand-over; a pass leases twice a second even
with nothing due).
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from gateway.dlr.binding import Binding
from gateway.store.base import LeaseFilters
from gateway.store.mapping import binding_of, to_us
from gateway.store.tables import devices

#: The filters that are instants: each the statement's parameter of its name.
_INSTANTS = ("older_than", "applied_before", "skip_unconfirmed_since")


def _free(shape: frozenset[str]) -> list[sa.ColumnElement[bool]]:
    """What a device must be to be leased: no live lease on it at ``:now``, and as the
    filters named in ``shape`` say."""
    free = [sa.or_(devices.c.lease_until.is_(None), devices.c.lease_until <= sa.bindparam("now"))]
    if "older_than" in shape:
        free.append(
            sa.or_(
                devices.c.checked_at.is_(None), devices.c.checked_at < sa.bindparam("older_than")
            )
        )
    if "only_unconfirmed" in shape:
        free.append(devices.c.confirmed.is_(False))
    if "applied_before" in shape:
        free.append(devices.c.applied_at < sa.bindparam("applied_before"))
    if "skip_unconfirmed_since" in shape:
        since: sa.BindParameter[int] = sa.bindparam("skip_unconfirmed_since")
        free.append(sa.or_(devices.c.confirmed.is_(True), devices.c.applied_at < since))
    return free


@functools.lru_cache(maxsize=16)  # the subsets of the four filters
def _leasing(shape: frozenset[str]) -> sa.Update:
    """The lease's statement for the filters named in ``shape``, built once: SQLAlchemy
    keeps its cache key with it (built anew each pass, the statement cost more CPU than
    its execution)."""
    free = _free(shape)
    # The queue pattern: lock the candidates, skipping rows another replica is leasing
    # right now (PostgreSQL; SQLite's write lock already excludes everyone).
    candidates = (
        sa.select(devices.c.aeui)
        .where(*free)
        .order_by(devices.c.checked_at.asc().nulls_first(), devices.c.aeui)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
        .cte("candidates")
    )
    return (
        sa.update(devices)
        .where(devices.c.aeui == candidates.c.aeui, *free)
        .values(lease_owner=sa.bindparam("owner"), lease_until=sa.bindparam("until"))
        .returning(*devices.c)
    )


def take_leases(
    connection: sa.Connection,
    owner: str,
    *,
    limit: int,
    now: int,
    until: int,
    filters: LeaseFilters,
) -> list[Binding]:
    """Lease up to ``limit`` free devices to ``owner`` until ``until``, least recently
    checked first (``StateStore.lease``)."""
    shape = frozenset(name for name, value in filters.items() if value)
    params: dict[str, object] = {"now": now, "limit": limit, "owner": owner, "until": until}
    for name in _INSTANTS:
        if name in shape:
            params[name] = to_us(filters[name])  # type: ignore[literal-required]
    rows = list(connection.execute(_leasing(shape), params))
    rows.sort(key=lambda row: (row.checked_at is not None, row.checked_at or 0, row.aeui))
    return [binding_of(row) for row in rows]


def release_lease(connection: sa.Connection, aeui: str, owner: str) -> bool:
    """Free ``owner``'s lease on the device; False when it holds none."""
    result = connection.execute(
        sa.update(devices)
        .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
    return bool(result.rowcount)


def record_check(
    connection: sa.Connection,
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
    result = connection.execute(
        sa.update(devices)
        .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
        .values(checked_at=now, confirmed=confirmed_value, lease_owner=None, lease_until=None)
    )
    return bool(result.rowcount)
