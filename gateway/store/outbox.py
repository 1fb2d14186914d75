"""The durable outbox of events, their deliveries and the webhook subscriptions.

Its tables (``gateway.store.tables``, revision 0006) are reached through the state store's
engine. An event is written once with its deliveries (one per subscribed
webhook, one for email) in one transaction; a delivery is claimed with a lease, so replicas
never send one at the same time, and a lease that expires (a killed replica) frees it for
another. Instants are microseconds since the epoch, as in the other tables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa

from gateway.store.mapping import insert_for, last_heard
from gateway.store.sql import SqlStateStore
from gateway.store.tables import deliveries, devices, events, stale_marks, webhooks

#: The email to the configured addresses (``GATEWAY_NOTIFY_EMAILS``).
EMAIL_TARGET = "email"
#: The email to the carrier's notification recipients (``GATEWAY_NOTIFY_CARRIER_RECIPIENTS``).
CARRIER_EMAIL_TARGET = "email:carrier"
EMAIL_TARGETS = (EMAIL_TARGET, CARRIER_EMAIL_TARGET)
_US = 1_000_000
_MAX_ERROR = 500


def _us(seconds: float) -> int:
    return round(seconds * _US)


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    secret: str
    previous_secret: str | None
    previous_until: float | None
    enabled: bool
    created_at: float
    updated_at: float

    def secrets(self, now: float) -> tuple[str, ...]:
        """The secrets a delivery is signed with now (the previous one while it is honoured)."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return (self.secret, self.previous_secret)
        return (self.secret,)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    type: str
    body: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    target: str
    state: str
    attempts: int
    next_at: float
    expires_at: float
    last_status: int | None
    last_error: str | None
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with its event."""

    delivery: Delivery
    event: StoredEvent
    #: Its subscription, read with the claim (None for an email, or a deleted one).
    webhook: Webhook | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result: ``error`` is None when it was delivered."""

    delivery: Delivery
    status: int | None
    error: str | None = None
    retry_in: float = 0.0


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


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        description=row.description,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_until=None if row.previous_until is None else row.previous_until / _US,
        enabled=bool(row.enabled),
        created_at=row.created_at / _US,
        updated_at=row.updated_at / _US,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        target=row.target,
        state=row.state,
        attempts=row.attempts,
        next_at=row.next_at / _US,
        expires_at=row.expires_at / _US,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=None if row.delivered_at is None else row.delivered_at / _US,
    )


def _event(row: Any) -> StoredEvent:
    return StoredEvent(row.id, row.type, row.body, row.created_at / _US)


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

    # -- subscriptions -------------------------------------------------------------------

    async def add_webhook(
        self, id: str, url: str, event_types: Sequence[str], secret: str, description: str | None
    ) -> Webhook:
        now = _us(self.clock())
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
            await connection.execute(webhooks.insert().values(**values))
            row = (await connection.execute(webhooks.select().where(webhooks.c.id == id))).one()
        return _webhook(row)

    async def webhook(self, id: str) -> Webhook | None:
        async with self._unit() as connection:
            row = (await connection.execute(webhooks.select().where(webhooks.c.id == id))).first()
        return None if row is None else _webhook(row)

    async def list_webhooks(self) -> list[Webhook]:
        async with self._unit() as connection:
            rows = await connection.execute(webhooks.select().order_by(webhooks.c.created_at))
        return [_webhook(row) for row in rows]

    async def update_webhook(
        self,
        id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Webhook | None:
        values: dict[str, Any] = {"updated_at": _us(self.clock())}
        if url is not None:
            values["url"] = url
        if event_types is not None:
            values["event_types"] = json.dumps(sorted(set(event_types)))
        if description is not None:
            values["description"] = description
        if enabled is not None:
            values["enabled"] = enabled
        return await self._change_webhook(id, values)

    async def rotate_secret(self, id: str, secret: str, overlap: float) -> Webhook | None:
        """A new secret; the old one still signs deliveries for ``overlap`` seconds."""
        now = self.clock()
        return await self._change_webhook(
            id,
            {
                "previous_secret": webhooks.c.secret,
                "previous_until": _us(now + overlap),
                "secret": secret,
                "updated_at": _us(now),
            },
        )

    async def _change_webhook(self, id: str, values: dict[str, Any]) -> Webhook | None:
        """Update the webhook ``id``; answers it as changed (None: there is none)."""
        async with self._unit() as connection:
            changed = await connection.execute(
                webhooks.update().where(webhooks.c.id == id).values(values).returning(*webhooks.c)
            )
            row = changed.first()
        return None if row is None else _webhook(row)

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
    ) -> Written:
        """``add_events`` of what ``build`` returns, in one transaction with the reads of
        device addresses ``build`` makes through the lookup it is given."""
        return await self._run(
            partial(_write_events, build=build, email=email, now=self.clock(), ttl=self.max_age)
        )

    async def claim(self, owner: str, *, lease: float, limit: int = 20) -> list[Claimed]:
        """Due deliveries, leased to ``owner`` for ``lease`` seconds (no other replica takes
        them until the lease ends: a crashed replica's come back to the others then), each
        with its event and its subscription as they are now."""
        now = _us(self.clock())
        claimed = await self._run(
            partial(
                _claim,
                owner=owner,
                now=now,
                until=now + _us(lease),
                limit=limit,
                skip_locked=self.dialect == "postgresql",
            )
        )
        return sorted(claimed, key=lambda c: (c.event.created_at, c.delivery.id))

    async def finish(self, owner: str, outcomes: Sequence[Outcome]) -> list[str]:
        """Record a batch of attempts in one transaction: delivered, or the next attempt in
        ``retry_in`` seconds, or failed past the delivery's expiry. An attempt whose lease was
        lost meanwhile is not recorded (another replica has it: at least once). Returns each
        delivery's new state (``lost`` for those)."""
        return await self._run(partial(_finish, owner=owner, outcomes=outcomes, now=self.clock()))

    async def release(self, owner: str) -> int:
        """Give back ``owner``'s leases at once (attempts it gave up, as a stopping worker
        does, or a dead predecessor of the same owner made): due again, not after the lease."""
        async with self._unit() as connection:
            done = await connection.execute(
                deliveries.update()
                .where(deliveries.c.lease_owner == owner, deliveries.c.state == "pending")
                .values(lease_owner=None, lease_until=None)
            )
        return int(done.rowcount)

    async def delivered(self, delivery: Delivery, owner: str, status: int | None) -> bool:
        """One attempt that succeeded (``finish`` of one)."""
        (state,) = await self.finish(owner, [Outcome(delivery, status)])
        return state == "delivered"

    async def attempt_failed(
        self, delivery: Delivery, owner: str, *, retry_in: float, status: int | None, error: str
    ) -> str:
        """One attempt that failed (``finish`` of one); the delivery's new state."""
        (state,) = await self.finish(owner, [Outcome(delivery, status, error, retry_in)])
        return state

    async def retry(self, event_id: str) -> int:
        """Failed deliveries of an event, pending again for another ``max_age``."""
        now = self.clock()
        async with self._unit() as connection:
            done = await connection.execute(
                deliveries.update()
                .where(deliveries.c.event_id == event_id, deliveries.c.state == "failed")
                .values(
                    state="pending",
                    next_at=_us(now),
                    expires_at=_us(now + self.max_age),
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
        query = events.select().order_by(events.c.created_at.desc(), events.c.id.desc())
        if before is not None:
            at = _us(before[0])
            query = query.where(
                sa.or_(
                    events.c.created_at < at,
                    sa.and_(events.c.created_at == at, events.c.id < before[1]),
                )
            )
        if type is not None:
            query = query.where(events.c.type == type)
        async with self._unit() as connection:
            found = [_event(row) for row in await connection.execute(query.limit(limit))]
            by_event: dict[str, list[Delivery]] = {e.id: [] for e in found}
            if found:
                rows = await connection.execute(
                    deliveries.select()
                    .where(deliveries.c.event_id.in_(list(by_event)))
                    .order_by(deliveries.c.id)
                )
                for row in rows:
                    by_event[row.event_id].append(_delivery(row))
        return [(event, by_event[event.id]) for event in found]

    async def event(self, event_id: str) -> StoredEvent | None:
        async with self._unit() as connection:
            row = (await connection.execute(events.select().where(events.c.id == event_id))).first()
        return None if row is None else _event(row)

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
        age = None if oldest is None else max(0.0, self.clock() - oldest / _US)
        return int(count), age

    async def addresses(self, aeuis: Iterable[str]) -> Addresses:
        """Each device's (location id, street address), for the events of calls answered
        from memory (which keeps no street address)."""
        return await self._run(partial(_addresses, aeuis=aeuis))

    # -- stale devices -------------------------------------------------------------------

    async def newly_stale(self, cutoff: float, *, limit: int = 500) -> list[dict[str, Any]]:
        """Devices last heard from before ``cutoff`` with no stale mark for that time."""
        latest = last_heard().label("heard")
        query = (
            sa.select(devices.c.aeui, devices.c.telephone_number, devices.c.location_id, latest)
            .select_from(devices.outerjoin(stale_marks, stale_marks.c.aeui == devices.c.aeui))
            .where(
                latest < _us(cutoff),
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
                "heard_at": row.heard / _US,
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


# -- the units of the hot paths (``SqlStateStore.run_unit``) --------------------------------


def _write_events(
    connection: sa.Connection,
    *,
    build: Callable[[AddressLookup], list[NewEvent]],
    email: Sequence[str],
    now: float,
    ttl: float,
) -> Written:
    new = build(partial(_addresses, connection))
    if not new:
        return Written([], 0)
    hooks = [
        _webhook(row)
        for row in connection.execute(webhooks.select().where(webhooks.c.enabled.is_(True)))
    ]
    # One statement for the batch (SQLAlchemy's "insertmanyvalues": compiled once, whatever
    # the batch's size); RETURNING names the ids not already written.
    written = list(
        connection.execute(
            insert_for(connection, events)
            .on_conflict_do_nothing(index_elements=[events.c.id])
            .returning(events.c.id),
            [
                {"id": e.id, "type": e.type, "body": e.body, "created_at": _us(e.created_at)}
                for e in {e.id: e for e in new}.values()
            ],
        ).scalars()
    )
    fresh = set(written)
    rows = [
        {
            "event_id": event.id,
            "target": target,
            "state": "pending",
            "attempts": 0,
            "next_at": _us(now),
            "expires_at": _us(event.created_at + ttl),
        }
        for event in new
        if event.id in fresh
        for target in [
            *(h.id for h in hooks if event.type in h.event_types),
            *(email if event.email else ()),
        ]
    ]
    if rows:
        connection.execute(deliveries.insert(), rows)
    return Written(written, len(rows))


def _claim(
    connection: sa.Connection, *, owner: str, now: int, until: int, limit: int, skip_locked: bool
) -> list[Claimed]:
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.state == "pending",
            deliveries.c.next_at <= now,
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
        )
        .order_by(deliveries.c.next_at)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    rows = connection.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=until)
        .returning(*deliveries.c)
    ).all()
    if not rows:
        return []
    found = {
        row.id: _event(row)
        for row in connection.execute(
            events.select().where(events.c.id.in_({row.event_id for row in rows}))
        )
    }
    targets = {row.target for row in rows if row.target not in EMAIL_TARGETS}
    hooks = (
        {
            row.id: _webhook(row)
            for row in connection.execute(webhooks.select().where(webhooks.c.id.in_(targets)))
        }
        if targets
        else {}
    )
    return [Claimed(_delivery(row), found[row.event_id], hooks.get(row.target)) for row in rows]


def _finish(
    connection: sa.Connection, *, owner: str, outcomes: Sequence[Outcome], now: float
) -> list[str]:
    states: dict[int, str] = {}
    # The usual outcome, delivered, takes one statement for each status answered.
    delivered: dict[int | None, list[int]] = {}
    for outcome in outcomes:
        if outcome.error is None:
            delivered.setdefault(outcome.status, []).append(outcome.delivery.id)
    leased = deliveries.c.lease_owner == owner
    released = {"attempts": deliveries.c.attempts + 1, "lease_owner": None, "lease_until": None}
    for status, ids in delivered.items():
        done = connection.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids), leased)
            .values(
                released
                | {
                    "state": "delivered",
                    "last_status": status,
                    "delivered_at": _us(now),
                    "last_error": None,
                }
            )
            .returning(deliveries.c.id)
        )
        states.update(dict.fromkeys(done.scalars(), "delivered"))
    for outcome in outcomes:
        delivery = outcome.delivery
        if outcome.error is None:
            continue
        due = now + outcome.retry_in
        state = "pending" if due <= delivery.expires_at else "failed"
        done = connection.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery.id, leased)
            .values(
                released
                | {
                    "state": state,
                    "last_status": outcome.status,
                    "next_at": _us(due),
                    "last_error": outcome.error[:_MAX_ERROR],
                }
            )
        )
        if done.rowcount:
            states[delivery.id] = state
    return [states.get(o.delivery.id, "lost") for o in outcomes]


def _addresses(connection: sa.Connection, aeuis: Iterable[str]) -> Addresses:
    wanted = sorted(set(aeuis))
    if not wanted:
        return {}
    rows = connection.execute(
        sa.select(devices.c.aeui, devices.c.location_id, devices.c.address).where(
            devices.c.aeui.in_(wanted)
        )
    )
    return {
        row.aeui: (row.location_id, json.loads(row.address) if row.address else None)
        for row in rows
    }
