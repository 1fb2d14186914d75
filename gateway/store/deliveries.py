"""A delivery's records, the delivery worker's units (claim, finish), the events page's query.

Each unit is written twice on purpose: once through SQLAlchemy for every backend (the
portable path), and once as ``sqlite3`` statements for SQLite, where the worker spends more
CPU in SQLAlchemy's statement building and execution than in the statements
(docs/benchmarks.md, "Deliveries cheaper, and in the idle class"). What the units decide
(which rows are due, what state an attempt leaves) is shared; ``tests/store/test_outbox.py``
runs the worker's scenarios on both paths and holds their results and tables equal.
"""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gateway.store.tables import deliveries, events, webhooks

#: The email to the configured addresses (``GATEWAY_NOTIFY_EMAILS``).
EMAIL_TARGET = "email"
#: The email to the carrier's notification recipients (``GATEWAY_NOTIFY_CARRIER_RECIPIENTS``).
CARRIER_EMAIL_TARGET = "email:carrier"
EMAIL_TARGETS = (EMAIL_TARGET, CARRIER_EMAIL_TARGET)
#: The lane of every webhook's deliveries; each email target is a lane of its own. A lane's
#: deliveries are claimed apart from the others' (``claim``'s ``lane``).
WEBHOOK_LANE = "webhook"
LANES = (*EMAIL_TARGETS, WEBHOOK_LANE)
US = 1_000_000
#: The longest failure reason kept with a delivery.
MAX_ERROR = 500
#: A subscription's secrets signing at once at most (the current one, and those rotated out
#: whose overlap has not ended): a rotation past it is refused (``TooManySecrets``).
MAX_SECRETS = 5


class TooManySecrets(Exception):
    """A rotation that would leave more than ``MAX_SECRETS`` secrets signing."""

    def __init__(self, until: float) -> None:
        super().__init__(until)
        #: When the oldest secret stops signing (a rotation is taken again).
        self.until = until


def to_us(seconds: float) -> int:
    return round(seconds * US)


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
    #: Rotated out before ``previous_secret``: (secret, until), newest first.
    older_secrets: tuple[tuple[str, float], ...] = ()

    def rotated_out(self, now: float) -> list[tuple[str, float]]:
        """The secrets rotated out whose overlap has not ended at ``now``, newest first."""
        found = list(self.older_secrets)
        if self.previous_secret and self.previous_until is not None:
            found.insert(0, (self.previous_secret, self.previous_until))
        return [(secret, until) for secret, until in found if now < until]

    def secrets(self, now: float) -> tuple[str, ...]:
        """The secrets a delivery is signed with now: the current one, and each rotated out
        while its overlap lasts."""
        return (self.secret, *(secret for secret, _ in self.rotated_out(now)))

    def rotation(self, secret: str, now: float, overlap: float) -> dict[str, Any]:
        """The columns that make ``secret`` current, the current one signing for ``overlap``
        more seconds beside those still signing; ``TooManySecrets`` past ``MAX_SECRETS``."""
        kept = self.rotated_out(now)
        if len(kept) + 2 > MAX_SECRETS:
            raise TooManySecrets(min(until for _, until in kept))
        older = [[s, to_us(until)] for s, until in kept]
        return {
            "previous_secret": self.secret,
            "previous_until": to_us(now + overlap),
            "older_secrets": json.dumps(older) if older else None,
            "secret": secret,
            "updated_at": to_us(now),
        }


def rotated_out_ended(now: float) -> dict[str, Any]:
    """The columns that end every rotated-out secret's overlap now: only the current signs."""
    return {
        "previous_secret": None,
        "previous_until": None,
        "older_secrets": None,
        "updated_at": to_us(now),
    }


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
    #: A failure no later attempt can mend (the subscription is gone or disabled): failed at
    #: once.
    final: bool = False


def webhook_of(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        description=row.description,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_until=None if row.previous_until is None else row.previous_until / US,
        enabled=bool(row.enabled),
        created_at=row.created_at / US,
        updated_at=row.updated_at / US,
        older_secrets=tuple((s, until / US) for s, until in json.loads(row.older_secrets or "[]")),
    )


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        target=row.target,
        state=row.state,
        attempts=row.attempts,
        next_at=row.next_at / US,
        expires_at=row.expires_at / US,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=None if row.delivered_at is None else row.delivered_at / US,
    )


def event_of(row: Any) -> StoredEvent:
    return StoredEvent(row.id, row.type, row.body, row.created_at / US)


def _claimed(
    rows: Sequence[Any],
    events_by_id: Callable[[list[str]], dict[str, StoredEvent]],
    webhooks_by_id: Callable[[list[str]], dict[str, Webhook]],
) -> list[Claimed]:
    """The claimed rows with their events and (for a webhook's) subscriptions, read by the
    path's own statements."""
    if not rows:
        return []
    found = events_by_id(sorted({row.event_id for row in rows}))
    targets = sorted({row.target for row in rows if row.target not in EMAIL_TARGETS})
    hooks = webhooks_by_id(targets) if targets else {}
    return [Claimed(delivery_of(row), found[row.event_id], hooks.get(row.target)) for row in rows]


def page_query(
    *, limit: int, before: tuple[float, str] | None = None, type: str | None = None
) -> sa.Select[Any]:
    """``OutboxStore.page``'s events, newest first (one type's through its index)."""
    query = events.select().order_by(events.c.created_at.desc(), events.c.id.desc())
    if before is not None:
        at = to_us(before[0])
        query = query.where(
            sa.or_(
                events.c.created_at < at,
                sa.and_(events.c.created_at == at, events.c.id < before[1]),
            )
        )
    if type is not None:
        query = query.where(events.c.type == type)
    return query.limit(limit)


@dataclass(frozen=True, slots=True)
class _Finishing:
    """What ``finish`` writes: the delivered ids by the status answered (one statement
    each), and each failed attempt's new state, next instant and reason."""

    delivered: dict[int | None, list[int]]
    failed: list[tuple[int, str, int | None, int, str]]

    @classmethod
    def of(cls, outcomes: Sequence[Outcome], now: float) -> _Finishing:
        delivered: dict[int | None, list[int]] = {}
        failed: list[tuple[int, str, int | None, int, str]] = []
        for outcome in outcomes:
            delivery = outcome.delivery
            if outcome.error is None:
                delivered.setdefault(outcome.status, []).append(delivery.id)
                continue
            due = now + outcome.retry_in
            state = "pending" if due <= delivery.expires_at and not outcome.final else "failed"
            failed.append(
                (delivery.id, state, outcome.status, to_us(due), outcome.error[:MAX_ERROR])
            )
        return cls(delivered, failed)

    @staticmethod
    def states(outcomes: Sequence[Outcome], states: dict[int, str]) -> list[str]:
        return [states.get(o.delivery.id, "lost") for o in outcomes]


# -- the portable units (``SqlStateStore.run_unit``) ----------------------------------------


def lane_of(target: str) -> str:
    """The lane a delivery to ``target`` is sent in (one of ``LANES``)."""
    return target if target in EMAIL_TARGETS else WEBHOOK_LANE


def claim(
    connection: sa.Connection,
    *,
    owner: str,
    now: int,
    until: int,
    limit: int,
    skip_locked: bool,
    lane: str | None = None,
    exclude: Sequence[str] = (),
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
    if lane == WEBHOOK_LANE:
        due = due.where(deliveries.c.target.not_in(EMAIL_TARGETS))
    elif lane is not None:
        due = due.where(deliveries.c.target == lane)
    if exclude:
        due = due.where(deliveries.c.target.not_in(sorted(exclude)))
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    rows = connection.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=until)
        .returning(*deliveries.c)
    ).all()
    return _claimed(
        rows,
        lambda ids: {
            row.id: event_of(row)
            for row in connection.execute(events.select().where(events.c.id.in_(ids)))
        },
        lambda ids: {
            row.id: webhook_of(row)
            for row in connection.execute(webhooks.select().where(webhooks.c.id.in_(ids)))
        },
    )


def finish(
    connection: sa.Connection, *, owner: str, outcomes: Sequence[Outcome], now: float
) -> list[str]:
    plan = _Finishing.of(outcomes, now)
    states: dict[int, str] = {}
    leased = deliveries.c.lease_owner == owner
    released = {"attempts": deliveries.c.attempts + 1, "lease_owner": None, "lease_until": None}
    for status, ids in plan.delivered.items():
        done = connection.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids), leased)
            .values(
                released
                | {
                    "state": "delivered",
                    "last_status": status,
                    "delivered_at": to_us(now),
                    "last_error": None,
                }
            )
            .returning(deliveries.c.id)
        )
        states.update(dict.fromkeys(done.scalars(), "delivered"))
    for id, state, status, next_at, error in plan.failed:
        done = connection.execute(
            deliveries.update()
            .where(deliveries.c.id == id, leased)
            .values(
                released
                | {"state": state, "last_status": status, "next_at": next_at, "last_error": error}
            )
        )
        if done.rowcount:
            states[id] = state
    return plan.states(outcomes, states)


# -- the same units as sqlite3 statements (``SqlStateStore.run_driver_unit``) ----------------

# Written from the tables' own column names (constants of this package, never input).
_DeliveryRow = namedtuple("_DeliveryRow", [c.name for c in deliveries.c])  # type: ignore[misc]
_EventRow = namedtuple("_EventRow", [c.name for c in events.c])  # type: ignore[misc]
WebhookRow = namedtuple("WebhookRow", [c.name for c in webhooks.c])  # type: ignore[misc]
_CLAIM_SQLITE3 = (
    "UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ("  # noqa: S608
    "SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= ? "
    "AND (lease_until IS NULL OR lease_until < ?){} ORDER BY next_at LIMIT ?) "
    f"RETURNING {', '.join(_DeliveryRow._fields)}"
)
#: The claim's statement, by whether targets are excluded (a last parameter: them, as a JSON
#: array): of every lane, of the webhooks' (its condition takes ``EMAIL_TARGETS``), of an
#: email target's (takes the target).
_EXCEPT_SQLITE3 = " AND target NOT IN (SELECT value FROM json_each(?))"
_CLAIM_ANY_SQLITE3, _CLAIM_WEBHOOKS_SQLITE3, _CLAIM_TARGET_SQLITE3 = (
    {excluding: _CLAIM_SQLITE3.format(lane + _EXCEPT_SQLITE3 * excluding) for excluding in (0, 1)}
    for lane in ("", " AND target NOT IN (?, ?)", " AND target = ?")
)
_EVENTS_SQLITE3 = (
    f"SELECT {', '.join(_EventRow._fields)} FROM events "  # noqa: S608
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_WEBHOOKS_SQLITE3 = (
    f"SELECT {', '.join(WebhookRow._fields)} FROM webhooks "  # noqa: S608
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_RELEASED = "attempts = attempts + 1, lease_owner = NULL, lease_until = NULL"
_DELIVERED_SQLITE3 = (
    f"UPDATE deliveries SET {_RELEASED}, state = 'delivered', last_status = ?, "  # noqa: S608
    "delivered_at = ?, last_error = NULL "
    "WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?)) RETURNING id"
)
_FAILED_SQLITE3 = (
    f"UPDATE deliveries SET {_RELEASED}, state = ?, last_status = ?, next_at = ?, "  # noqa: S608
    "last_error = ? WHERE id = ? AND lease_owner = ?"
)


def claim_sqlite3(
    connection: sqlite3.Connection,
    *,
    owner: str,
    now: int,
    until: int,
    limit: int,
    lane: str | None = None,
    exclude: Sequence[str] = (),
) -> list[Claimed]:
    statement, targets = (
        (_CLAIM_ANY_SQLITE3, ())
        if lane is None
        else (_CLAIM_WEBHOOKS_SQLITE3, EMAIL_TARGETS)
        if lane == WEBHOOK_LANE
        else (_CLAIM_TARGET_SQLITE3, (lane,))
    )
    if exclude:
        targets = (*targets, json.dumps(sorted(exclude)))
    parameters = (owner, until, now, now, *targets, limit)
    rows: list[Any] = [
        _DeliveryRow._make(values)
        for values in connection.execute(statement[bool(exclude)], parameters)
    ]
    return _claimed(
        rows,
        lambda ids: {
            values[0]: event_of(_EventRow._make(values))
            for values in connection.execute(_EVENTS_SQLITE3, (json.dumps(ids),))
        },
        lambda ids: {
            values[0]: webhook_of(WebhookRow._make(values))
            for values in connection.execute(_WEBHOOKS_SQLITE3, (json.dumps(ids),))
        },
    )


def finish_sqlite3(
    connection: sqlite3.Connection, *, owner: str, outcomes: Sequence[Outcome], now: float
) -> list[str]:
    plan = _Finishing.of(outcomes, now)
    states: dict[int, str] = {}
    for status, ids in plan.delivered.items():
        done = connection.execute(_DELIVERED_SQLITE3, (status, to_us(now), owner, json.dumps(ids)))
        states.update(dict.fromkeys((row[0] for row in done), "delivered"))
    for id, state, status, next_at, error in plan.failed:
        done = connection.execute(_FAILED_SQLITE3, (state, status, next_at, error, id, owner))
        if done.rowcount:
            states[id] = state
    return plan.states(outcomes, states)
