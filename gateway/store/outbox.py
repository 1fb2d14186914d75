"""The durable outbox of events, their deliveries and the webhook subscriptions.

Its tables (``gateway.store.tables``, revision 0006) are reached through the state store's
engine. An event is written once with its deliveries (one per subscribed
webhook, one for email) in one transaction; a delivery is claimed with a lease, so replicas
never send one at the same time, and a lease that expires (a killed replica) frees it for
another. Instants are microseconds since the epoch, as in the other tables.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from types import EllipsisType
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from gateway.dlr.binding import UNKNOWN_OBSERVED_AT
from gateway.store import deliveries as units
from gateway.store.base import HistoryRecord
from gateway.store.deliveries import (
    US,
    Claimed,
    Delivery,
    Outcome,
    StoredEvent,
    Webhook,
    delivery_of,
    event_of,
    rotated_out_ended,
    to_us,
    webhook_of,
)
from gateway.store.driver import APPEND_HISTORY_SQLITE3
from gateway.store.mapping import insert_for, last_heard
from gateway.store.sql import PURGE_CHUNK, SqlStateStore
from gateway.store.tables import deliveries, devices, events, history, stale_marks, webhooks

#: Subscriptions at most: every event is a delivery row per subscription, written in the
#: transaction of the event's batch (for a 911 call, right after the carrier's query). A
#: bound on a runaway script, not an exact count: on PostgreSQL two creations at the same
#: moment may both pass it.
MAX_WEBHOOKS = 100

T = TypeVar("T")


class TooManyWebhooks(Exception):
    """``add_webhook`` with ``MAX_WEBHOOKS`` subscriptions already."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    type: str
    body: str
    created_at: float
    #: Whether it goes to the email recipients as well as to its webhooks.
    email: bool = False


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write_events`` wrote: the ids of the events new to the outbox, and how many
    deliveries they got (none: nothing is due for the delivery worker)."""

    ids: list[str]
    deliveries: int


#: Each device's (location id, street address): ``OutboxStore.addresses``.
Addresses = dict[str, tuple[str, dict[str, Any] | None]]
#: ``addresses`` within ``write_events``' transaction.
AddressLookup = Callable[[Iterable[str]], Addresses]


class OutboxStore:
    """Events, deliveries and subscriptions, over the state store's engine."""

    def __init__(
        self,
        store: SqlStateStore,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = 86_400.0,
    ) -> None:
        self.engine = store.engine
        self.dialect = self.engine.dialect.name
        self.clock = clock
        #: How long a delivery is attempted for, from its event's creation.
        self.max_age = max_age
        #: A unit of work: one transaction, in turn with the store's on SQLite (one writer).
        self._unit = store.transaction
        #: A unit written for a synchronous connection: on SQLite, run whole on the
        #: driver's thread (the hot ones: events written, deliveries claimed and finished).
        self._run = store.run_unit
        #: The claim's and finish's ``sqlite3`` statements (``gateway.store.deliveries``),
        #: on SQLite unless the store runs everything through SQLAlchemy.
        self._sqlite3 = store.run_driver_unit if store.uses_sqlite3 else None
        #: History records as rows, stamped by the state store's clock.
        self._history_rows = store.history_rows

    # -- subscriptions -------------------------------------------------------------------

    async def add_webhook(
        self, id: str, url: str, event_types: Sequence[str], secret: str, description: str | None
    ) -> Webhook:
        now = to_us(self.clock())
        values = {
            "id": id,
            "url": url,
            "event_types": json.dumps(sorted(set(event_types))),
            "description": description,
            "secret": secret,
            "enabled": True,
            "created_at": now,
            "updated_at": now,
        }
        async with self._unit() as connection:
            count = sa.select(sa.func.count()).select_from(webhooks)
            if (await connection.execute(count)).scalar_one() >= MAX_WEBHOOKS:
                raise TooManyWebhooks
            await connection.execute(webhooks.insert().values(**values))
            row = (await connection.execute(webhooks.select().where(webhooks.c.id == id))).one()
        return webhook_of(row)

    async def webhook(self, id: str) -> Webhook | None:
        async with self._unit() as connection:
            row = (await connection.execute(webhooks.select().where(webhooks.c.id == id))).first()
        return None if row is None else webhook_of(row)

    async def list_webhooks(self) -> list[Webhook]:
        async with self._unit() as connection:
            rows = await connection.execute(webhooks.select().order_by(webhooks.c.created_at))
        return [webhook_of(row) for row in rows]

    async def update_webhook(
        self,
        id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | EllipsisType | None = ...,
        enabled: bool | None = None,
    ) -> Webhook | None:
        """The fields not ``None`` changed; ``description`` unless ``...`` (``None``
        removes it)."""
        values: dict[str, Any] = {"updated_at": to_us(self.clock())}
        if url is not None:
            values["url"] = url
        if event_types is not None:
            values["event_types"] = json.dumps(sorted(set(event_types)))
        if description is not ...:
            values["description"] = description
        if enabled is not None:
            values["enabled"] = enabled
        return await self._change_webhook(id, values)

    async def rotate_secret(self, id: str, secret: str, overlap: float) -> Webhook | None:
        """A new secret; the old one still signs deliveries for ``overlap`` seconds, beside
        the earlier ones still signing (``Webhook.rotation``: ``TooManySecrets``)."""
        now = self.clock()
        async with self._unit() as connection:
            found = webhooks.select().where(webhooks.c.id == id).with_for_update()
            row = (await connection.execute(found)).first()
            if row is None:
                return None
            values = webhook_of(row).rotation(secret, now, overlap)
            changed = await connection.execute(
                webhooks.update().where(webhooks.c.id == id).values(values).returning(*webhooks.c)
            )
            row = changed.one()
        return webhook_of(row)

    async def end_rotated_out(self, id: str) -> Webhook | None:
        """Only the current secret signs from now on (one rotated out has leaked)."""
        return await self._change_webhook(id, rotated_out_ended(self.clock()))

    async def _change_webhook(self, id: str, values: dict[str, Any]) -> Webhook | None:
        """Update the webhook ``id``; answers it as changed (None: there is none)."""
        async with self._unit() as connection:
            changed = await connection.execute(
                webhooks.update().where(webhooks.c.id == id).values(values).returning(*webhooks.c)
            )
            row = changed.first()
        return None if row is None else webhook_of(row)

    async def delete_webhook(self, id: str) -> bool:
        """Remove it; its pending deliveries fail (nothing is left to send them to)."""
        async with self._unit() as connection:
            deleted = await connection.execute(webhooks.delete().where(webhooks.c.id == id))
            await connection.execute(
                deliveries.update()
                .where(deliveries.c.target == id, deliveries.c.state == "pending")
                .values(state="failed", last_error="the subscription was deleted")
            )
        return bool(deleted.rowcount)

    # -- events --------------------------------------------------------------------------

    async def add_events(self, new: Iterable[NewEvent], *, email: Sequence[str] = ()) -> list[str]:
        """Write events and their deliveries (to the webhooks subscribed, and to the email
        targets in ``email`` for an event that is emailed); an id already written is skipped
        (emitting twice is harmless). Returns the ids written now."""
        rows = list(new)
        if not rows:
            return []

        return (await self.write_events(lambda _: rows, email=email)).ids

    async def write_events(
        self,
        build: Callable[[AddressLookup], list[NewEvent]],
        *,
        email: Sequence[str] = (),
        records: Sequence[HistoryRecord] = (),
    ) -> Written:
        """``add_events`` of what ``build`` returns, in one transaction with the reads of
        device addresses ``build`` makes through the lookup it is given, and with the history
        ``records`` (the call-time queries' of the same batch: both or neither)."""
        work = partial(
            _write_events,
            build=build,
            email=email,
            history_rows=self._history_rows(records) if records else [],
            now=self.clock(),
            ttl=self.max_age,
        )
        return await self._events_unit(work)

    async def claim(
        self,
        owner: str,
        *,
        lease: float,
        limit: int = 20,
        lane: str | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Claimed]:
        """Due deliveries (of one ``lane``, an email target or ``webhook``, if given; none to
        an ``exclude``d target), leased to ``owner`` for ``lease`` seconds (no other replica
        takes them until the lease ends: a crashed replica's come back to the others then),
        each with its event and its subscription as they are now."""
        now = to_us(self.clock())
        until = now + to_us(lease)
        options: dict[str, Any] = {
            "owner": owner,
            "now": now,
            "until": until,
            "limit": limit,
            "lane": lane,
            "exclude": exclude,
        }
        if self._sqlite3 is not None:
            claim = partial(units.claim_sqlite3, **options)
            claimed = await self._sqlite3(claim)
        else:
            skip_locked = self.dialect == "postgresql"
            claimed = await self._run(partial(units.claim, skip_locked=skip_locked, **options))
        return sorted(claimed, key=lambda c: (c.event.created_at, c.delivery.id))

    async def finish(self, owner: str, outcomes: Sequence[Outcome]) -> list[str]:
        """Record a batch of attempts in one transaction: delivered, or the next attempt in
        ``retry_in`` seconds, or failed past the delivery's expiry. An attempt whose lease was
        lost meanwhile is not recorded (another replica has it: at least once). Returns each
        delivery's new state (``lost`` for those)."""
        if self._sqlite3 is not None:
            finish = partial(units.finish_sqlite3, owner=owner, outcomes=outcomes, now=self.clock())
            states: list[str] = await self._sqlite3(finish)
            return states
        return await self._run(
            partial(units.finish, owner=owner, outcomes=outcomes, now=self.clock())
        )

    async def release(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Give back ``owner``'s leases (of the deliveries ``ids``, if given) at once (attempts
        it gave up or will not make, as a stopping worker does, or a dead predecessor of the
        same owner made): due again, not after the lease."""
        mine = [deliveries.c.lease_owner == owner, deliveries.c.state == "pending"]
        if ids is not None:
            mine.append(deliveries.c.id.in_(ids))
        async with self._unit() as connection:
            done = await connection.execute(
                deliveries.update().where(*mine).values(lease_owner=None, lease_until=None)
            )
        return int(done.rowcount)

    async def retry(self, event_id: str) -> int:
        """Failed deliveries of an event, pending again for another ``max_age``; a deleted or
        disabled subscription's stay failed (nothing would take them)."""
        now = self.clock()
        enabled = sa.select(webhooks.c.id).where(webhooks.c.enabled.is_(True))
        deliverable = sa.or_(
            deliveries.c.target.in_(units.EMAIL_TARGETS),
            deliveries.c.target.in_(enabled.scalar_subquery()),
        )
        async with self._unit() as connection:
            done = await connection.execute(
                deliveries.update()
                .where(
                    deliveries.c.event_id == event_id,
                    deliveries.c.state == "failed",
                    deliverable,
                )
                .values(
                    state="pending",
                    next_at=to_us(now),
                    expires_at=to_us(now + self.max_age),
                    lease_owner=None,
                    lease_until=None,
                )
            )
        return int(done.rowcount)

    async def page(
        self, *, limit: int, before: tuple[float, str] | None = None, type: str | None = None
    ) -> list[tuple[StoredEvent, list[Delivery]]]:
        """Events newest first, each with its deliveries; ``before`` is the last page's last
        (created_at, id)."""
        query = units.page_query(limit=limit, before=before, type=type)
        async with self._unit() as connection:
            found = [event_of(row) for row in await connection.execute(query)]
            by_event: dict[str, list[Delivery]] = {e.id: [] for e in found}
            if found:
                rows = await connection.execute(
                    deliveries.select()
                    .where(deliveries.c.event_id.in_(list(by_event)))
                    .order_by(deliveries.c.id)
                )
                for row in rows:
                    by_event[row.event_id].append(delivery_of(row))
        return [(event, by_event[event.id]) for event in found]

    async def event(self, event_id: str) -> StoredEvent | None:
        async with self._unit() as connection:
            row = (await connection.execute(events.select().where(events.c.id == event_id))).first()
        return None if row is None else event_of(row)

    async def backlog(self) -> tuple[int, float | None]:
        """Pending deliveries, and the age in seconds of the oldest one's event."""
        async with self._unit() as connection:
            count, oldest = (
                await connection.execute(
                    sa.select(sa.func.count(), sa.func.min(events.c.created_at))
                    .select_from(deliveries.join(events, events.c.id == deliveries.c.event_id))
                    .where(deliveries.c.state == "pending")
                )
            ).one()
        age = None if oldest is None else max(0.0, self.clock() - oldest / US)
        return int(count), age

    async def purge(self, older_than: float) -> int:
        """Events created before ``older_than`` (epoch seconds) with no delivery pending, and
        their deliveries; in chunks, each its own transaction. Answers how many events went."""
        pending = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.event_id == events.c.id, deliveries.c.state == "pending")
            .exists()
        )
        chunk = (
            sa.select(events.c.id)
            .where(events.c.created_at < to_us(older_than), ~pending)
            .order_by(events.c.created_at)
            .limit(PURGE_CHUNK)
        )
        total = 0
        while True:
            async with self._unit() as connection:
                ids = list((await connection.execute(chunk)).scalars())
                if ids:
                    gone = deliveries.c.event_id.in_(ids)
                    await connection.execute(sa.delete(deliveries).where(gone))
                    await connection.execute(sa.delete(events).where(events.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < PURGE_CHUNK:
                return total

    async def addresses(self, aeuis: Iterable[str]) -> Addresses:
        """Each device's (location id, street address), for the events of calls answered
        from memory (which keeps no street address)."""
        return await self._events_unit(partial(_lookup, aeuis=aeuis))

    async def _events_unit(self, work: Callable[[_EventStatements], T]) -> T:
        """``work`` in one transaction, with the events' statements: as ``sqlite3``'s on
        SQLite's driver thread, else through SQLAlchemy."""
        if self._sqlite3 is not None:
            done: T = await self._sqlite3(lambda connection: work(_Sqlite3Events(connection)))
            return done
        return await self._run(lambda connection: work(_PortableEvents(connection)))

    # -- stale devices -------------------------------------------------------------------

    async def newly_stale(self, cutoff: float, *, limit: int = 500) -> list[dict[str, Any]]:
        """Devices last heard from before ``cutoff`` with no stale mark for that time, but not
        one no report has placed (``UNKNOWN_OBSERVED_AT``): no report of it grows old."""
        latest = last_heard().label("heard")
        query = (
            sa.select(devices.c.aeui, devices.c.telephone_number, devices.c.location_id, latest)
            .select_from(devices.outerjoin(stale_marks, stale_marks.c.aeui == devices.c.aeui))
            .where(
                latest < to_us(cutoff),
                devices.c.observed_at != to_us(UNKNOWN_OBSERVED_AT.timestamp()),
                sa.or_(stale_marks.c.heard_at.is_(None), stale_marks.c.heard_at != latest),
            )
            .order_by(latest)
            .limit(limit)
        )
        async with self._unit() as connection:
            rows = (await connection.execute(query)).all()
        return [
            {
                "aeui": row.aeui,
                "telephone_number": row.telephone_number,
                "location_id": row.location_id,
                "heard_at": row.heard / US,
                "heard_us": int(row.heard),
            }
            for row in rows
        ]

    async def mark_stale(self, marks: Sequence[tuple[str, int]]) -> None:
        """Remember (aeui, heard_us) as reported stale."""
        if not marks:
            return
        async with self._unit() as connection:
            for aeui, heard_us in marks:
                statement = insert_for(connection, stale_marks).values(aeui=aeui, heard_at=heard_us)
                await connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[stale_marks.c.aeui],
                        set_={"heard_at": statement.excluded.heard_at},
                    )
                )


# -- the events' unit: one plan, two sets of statements -------------------------------------


def _write_events(
    statements: _EventStatements,
    *,
    build: Callable[[AddressLookup], list[NewEvent]],
    email: Sequence[str],
    history_rows: list[dict[str, Any]],
    now: float,
    ttl: float,
) -> Written:
    if history_rows:
        statements.insert_history(history_rows)
    new = build(partial(_lookup, statements))
    if not new:
        return Written([], 0)
    hooks = statements.enabled_webhooks()
    unique = list({e.id: e for e in new}.values())  # an event emitted twice is written once
    written = statements.insert_events(unique)
    fresh = set(written)
    rows = [
        (event.id, target, to_us(now), to_us(event.created_at + ttl))
        for event in unique
        if event.id in fresh
        for target in [
            *(h.id for h in hooks if event.type in h.event_types),
            *(email if event.email else ()),
        ]
    ]
    if rows:
        statements.insert_deliveries(rows)
    return Written(written, len(rows))


class _EventStatements(Protocol):
    """What ``_write_events`` runs, in one transaction."""

    def addresses(self, wanted: list[str]) -> Addresses:
        """Of the devices ``wanted`` (distinct, sorted, at least one)."""
        ...

    def enabled_webhooks(self) -> list[Webhook]: ...
    def insert_events(self, new: list[NewEvent]) -> list[str]: ...
    def insert_deliveries(self, rows: list[tuple[str, str, int, int]]) -> None: ...
    def insert_history(self, rows: list[dict[str, Any]]) -> None:
        """Rows of ``SqlStateStore.history_rows``."""
        ...


class _PortableEvents:
    """``_write_events``' statements through SQLAlchemy, for every backend (the portable
    path, run by ``SqlStateStore.run_unit``)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def addresses(self, wanted: list[str]) -> Addresses:
        rows = self.connection.execute(
            sa.select(devices.c.aeui, devices.c.location_id, devices.c.address).where(
                devices.c.aeui.in_(wanted)
            )
        )
        return _addresses_of(rows)

    def enabled_webhooks(self) -> list[Webhook]:
        rows = self.connection.execute(webhooks.select().where(webhooks.c.enabled.is_(True)))
        return [webhook_of(row) for row in rows]

    def insert_events(self, new: list[NewEvent]) -> list[str]:
        """One statement (SQLAlchemy's "insertmanyvalues"); RETURNING names the ids not
        already written."""
        statement = (
            insert_for(self.connection, events)
            .on_conflict_do_nothing(index_elements=[events.c.id])
            .returning(events.c.id)
        )
        rows = [
            {"id": e.id, "type": e.type, "body": e.body, "created_at": to_us(e.created_at)}
            for e in new
        ]
        return list(self.connection.execute(statement, rows).scalars())

    def insert_deliveries(self, rows: list[tuple[str, str, int, int]]) -> None:
        self.connection.execute(
            deliveries.insert(),
            [
                dict(zip(_DELIVERY_COLUMNS, row, strict=True), state="pending", attempts=0)
                for row in rows
            ],
        )

    def insert_history(self, rows: list[dict[str, Any]]) -> None:
        self.connection.execute(sa.insert(history), rows)


_DELIVERY_COLUMNS = ("event_id", "target", "next_at", "expires_at")
# Written from constants of this package (the columns above), never from input.
_INSERT_DELIVERY_SQLITE3 = (
    f"INSERT INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}, state, attempts) "  # noqa: S608
    "VALUES (?, ?, ?, ?, 'pending', 0)"
)
_ADDRESSES_SQLITE3 = (
    "SELECT aeui, location_id, address FROM devices WHERE aeui IN (SELECT value FROM json_each(?))"
)
_WEBHOOKS_SQLITE3 = f"SELECT {', '.join(units.WebhookRow._fields)} FROM webhooks WHERE enabled"  # noqa: S608
_EVENT_VALUES = "(?, ?, ?, ?)"
#: Events a statement inserts (4 parameters each, far below SQLite's limit of 32 766).
_EVENTS_AT_ONCE = 200


class _Sqlite3Events:
    """The same statements as ``sqlite3``'s, on SQLite (``SqlStateStore.run_driver_unit``):
    they run on the driver's thread, and SQLAlchemy's statement building and execution there
    cost several times the statements' own CPU (docs/benchmarks.md). ``tests/store/
    test_outbox.py`` holds the two paths' results and tables equal."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def addresses(self, wanted: list[str]) -> Addresses:
        return _addresses_of(self.connection.execute(_ADDRESSES_SQLITE3, (json.dumps(wanted),)))

    def enabled_webhooks(self) -> list[Webhook]:
        rows = self.connection.execute(_WEBHOOKS_SQLITE3)
        return [webhook_of(units.WebhookRow._make(values)) for values in rows]

    def insert_events(self, new: list[NewEvent]) -> list[str]:
        """A multi-row statement per ``_EVENTS_AT_ONCE`` events (``sqlite3`` runs
        ``executemany`` without RETURNING)."""
        written: list[str] = []
        for start in range(0, len(new), _EVENTS_AT_ONCE):
            chunk = new[start : start + _EVENTS_AT_ONCE]
            statement = (
                "INSERT INTO events (id, type, body, created_at) VALUES "  # noqa: S608 - "?"s
                + ", ".join([_EVENT_VALUES] * len(chunk))
                + " ON CONFLICT (id) DO NOTHING RETURNING id"
            )
            values = [v for e in chunk for v in (e.id, e.type, e.body, to_us(e.created_at))]
            written.extend(row[0] for row in self.connection.execute(statement, values))
        return written

    def insert_deliveries(self, rows: list[tuple[str, str, int, int]]) -> None:
        self.connection.executemany(_INSERT_DELIVERY_SQLITE3, rows)

    def insert_history(self, rows: list[dict[str, Any]]) -> None:
        self.connection.executemany(APPEND_HISTORY_SQLITE3, rows)


def _lookup(statements: _EventStatements, aeuis: Iterable[str]) -> Addresses:
    """``AddressLookup`` through ``statements``."""
    wanted = sorted(set(aeuis))
    return statements.addresses(wanted) if wanted else {}


def _addresses_of(rows: Iterable[Any]) -> Addresses:
    return {
        aeui: (location_id, json.loads(address) if address else None)
        for aeui, location_id, address in rows
    }
