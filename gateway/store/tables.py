"""The state store's tables, as SQLAlchemy Core metadata, portable across PostgreSQL and SQLite.

Every table is here, those of the wiremap, the outbox and imports too, so that the metadata is
whole wherever it is imported.

Every instant is a ``BIGINT`` of microseconds since the Unix epoch, UTC: exact, and ordered
the same way by every backend. JSON is stored as text (``address``, ``from_json``,
``to_json``), compact with sorted keys. Schema changes are Alembic migrations
(``gateway/store/migrations``); a test holds this metadata and the migrations to each other.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

#: Deterministic constraint and index names, the same on every backend (migrations name them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: A 64-bit autoincrementing key; SQLite only autoincrements ``INTEGER PRIMARY KEY``.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _table(name: str, *items: sa.schema.SchemaItem, **options: Any) -> sa.Table:
    return sa.Table(name, metadata, *items, **options)


def _instant(name: str, *, nullable: bool = False) -> sa.Column[int]:
    """An instant: a ``BIGINT`` of microseconds since the Unix epoch, UTC."""
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _coordinates() -> tuple[sa.Column[float], sa.Column[float]]:
    """A place's latitude and longitude (WGS84 degrees), when known."""
    return (
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
    )


def _lease() -> tuple[sa.Column[str], sa.Column[int]]:
    """Which process holds the row, and until when (``gateway.store.leases``)."""
    return sa.Column("lease_owner", sa.String(128), nullable=True), _instant(
        "lease_until", nullable=True
    )


def _one_row(name: str, value: sa.Column[object]) -> sa.Table:
    """A table of one row (``id`` 1) holding one value."""
    return _table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        value,
        sa.CheckConstraint("id = 1", name="one_row"),
    )


def _device_table(name: str, *items: sa.schema.SchemaItem) -> sa.Table:
    """A table of a row per device, keyed by its ``aeui``."""
    return _table(name, sa.Column("aeui", sa.String(64), primary_key=True), *items)


devices = _device_table(
    "devices",
    sa.Column("endpoint_id", sa.String(64), nullable=False),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("address", sa.Text(), nullable=True),
    sa.Column("caller_name", sa.Text(), nullable=False),
    sa.Column("telephone_number", sa.String(32), nullable=False),
    _instant("observed_at"),
    sa.Column("source", sa.String(32), nullable=False),
    _instant("applied_at"),
    sa.Column("confirmed", sa.Boolean(), nullable=False),
    *_coordinates(),
    sa.Column("version", sa.Integer(), nullable=False),
    *_lease(),
    _instant("checked_at", nullable=True),
    # Revision 0002 (the emergency-call location query). Where ``latitude``/``longitude``
    # came from when the gateway itself established them: ``gps`` (the device's fix, with
    # its accuracy) or ``street`` (a street-level geocode); NULL when they are the carrier's
    # own (a ZIP centroid, say). Trusted only while ``coordinates_version`` equals
    # ``version``: a release without these columns (a rollback) moves a device without
    # touching them, and the version it bumps retires them.
    sa.Column("coordinates_source", sa.String(16), nullable=True),
    sa.Column("coordinates_accuracy", sa.Double(), nullable=True),
    sa.Column("coordinates_version", sa.Integer(), nullable=True),
    # Revision 0004 (number ownership). When the gateway last heard from the device (its
    # own clock, never the device's): a claim or an unchanged report. Which device of a
    # shared number a 911 query answers. A release without this column leaves it behind on
    # an unchanged report, so readers take the later of it and ``applied_at``.
    _instant("heard_at", nullable=True),
    # Revision 0004: the callback number the device's token attested (its ``phone_number``
    # claim), when it did. It authorizes the device for that number only while it equals
    # ``telephone_number`` (a release without this column may change the number).
    sa.Column("attested_number", sa.String(32), nullable=True),
    # Revision 0008: ``Binding.ordered_at``, a report time the device's order has reached
    # past ``observed_at`` (a move the carrier refused); NULL: ``observed_at`` orders alone.
    # Readers order by the later of the two, so a release without it (a rollback) that
    # moves ``observed_at`` alone leaves an order that is still right.
    _instant("ordered_at", nullable=True),
    sa.Index(None, "checked_at"),
    sa.Index(None, "location_id"),
    # Revision 0002: the emergency-call query finds devices by callback number.
    sa.Index(None, "telephone_number"),
    # Revision 0009: an endpoint delete finds the device bound to it (``bound_to``).
    sa.Index(None, "endpoint_id"),
)

locations = _table(
    "locations",
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("address", sa.Text(), nullable=False),
    sa.Column("status", sa.String(64), nullable=True),
    *_coordinates(),
    _instant("created_at"),
)

#: Revision 0004: who may use a callback number. The first device to hold a number owns it;
#: an admin may release it (the row goes) or mark it shared (any device may use it).
numbers = _table(
    "numbers",
    sa.Column("telephone_number", sa.String(32), primary_key=True),
    sa.Column("owner_aeui", sa.String(64), nullable=True),
    sa.Column("shared", sa.Boolean(), nullable=False),
    _instant("updated_at"),
    sa.Index(None, "owner_aeui"),
)

history = _table(
    "history",
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("aeui", sa.String(64), nullable=False),
    _instant("at"),
    sa.Column("credential", sa.String(128), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    _instant("observed_at", nullable=True),
    sa.Column("from_location_id", sa.String(64), nullable=True),
    sa.Column("to_location_id", sa.String(64), nullable=True),
    sa.Column("from_json", sa.Text(), nullable=True),
    sa.Column("to_json", sa.Text(), nullable=True),
    sa.Index(None, "aeui", "id"),
    sa.Index(None, "at"),
    # Revision 0012: the console's 911 calls page (one kind's newest rows).
    sa.Index(None, "kind", "id"),
    # Never reuse an ID, even after a purge empties the table: pagination is by ID.
    sqlite_autoincrement=True,
)

#: One row: the oldest release (by migration head) that may run on this schema.
dlr_schema = _one_row("dlr_schema", sa.Column("compatible_since", sa.String(32), nullable=False))

#: Revision 0005: the wiremap (network elements -> locations; ``gateway.store.wiremap``).
network_entries = _table(
    "network_entries",
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("port_id", sa.String(64), nullable=True),
    sa.Column("address", sa.Text(), nullable=False),
    sa.Column("location_id", sa.String(64), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    _instant("updated_at"),
)

#: One row: the wiremap's version, bumped by every change.
network_version = _one_row("network_version", sa.Column("version", sa.BigInteger(), nullable=False))

#: Revision 0006: the event outbox (``gateway.store.outbox``).
webhooks = _table(
    "webhooks",
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.Text(), nullable=False),
    #: A JSON list of event types.
    sa.Column("event_types", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("secret", sa.String(128), nullable=False),
    #: The secret before the last rotation: deliveries are signed with both until
    #: ``previous_until`` (Standard Webhooks' several signatures).
    sa.Column("previous_secret", sa.String(128), nullable=True),
    _instant("previous_until", nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    _instant("created_at"),
    _instant("updated_at"),
    #: Revision 0013: the secrets rotated out before ``previous_secret`` whose overlap has not
    #: ended, still signing: a JSON list of ``[secret, until]`` (microseconds), newest first.
    #: The previous release neither reads nor writes it.
    sa.Column("older_secrets", sa.Text(), nullable=True),
)

events = _table(
    "events",
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    #: The event's JSON body, exactly the bytes every delivery sends and signs.
    sa.Column("body", sa.Text(), nullable=False),
    _instant("created_at"),
    sa.Index(None, "created_at"),
    # Revision 0012: ``GET /v1/events?type=`` (one type's newest events).
    sa.Index(None, "type", "created_at", "id"),
)

deliveries = _table(
    "deliveries",
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    #: A webhook's id, ``email`` or ``email:carrier``.
    sa.Column("target", sa.String(40), nullable=False),
    #: ``pending``, ``delivered`` or ``failed`` (given up; retried only by an admin).
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    _instant("next_at"),
    #: No attempt is made after this instant: the delivery fails instead.
    _instant("expires_at"),
    *_lease(),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    _instant("delivered_at", nullable=True),
    sa.UniqueConstraint("event_id", "target"),
    sa.Index(None, "state", "next_at"),
)

#: Devices a ``device_stale`` event was emitted for, and for which last-heard time: one
#: event per staleness (a device heard from again, then stale again, gets another).
stale_marks = _device_table("stale_marks", _instant("heard_at"))

#: Revision 0007: bulk imports' progress (``gateway.store.imports``).
imports = _table(
    "imports",
    sa.Column("import_id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    # The file's SHA-256: a resume must be given the same file.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    _instant("created_at"),
    _instant("updated_at"),
    sa.Column("report", sa.Text(), nullable=True),
)

import_rows = _table(
    "import_rows",
    sa.Column("import_id", sa.String(32), primary_key=True),
    sa.Column("line", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text(), nullable=True),
)

#: Revision 0008: devices an admin deleted, and the order they had reached then (the later
#: of the deletion and their newest report): a report observed before it does not create
#: the device again. Purged with the history past its retention.
deleted_devices = _device_table(
    "deleted_devices",
    _instant("deleted_at"),
    sa.Index(None, "deleted_at"),
)

#: Revision 0010: devices whose tokens an admin revoked, and the instant before which their
#: tokens are refused (``iat`` earlier; a token without one too). A row only moves forward
#: and is never purged: a token without ``iat`` stays refused for as long as it lives.
token_revocations = _device_table("token_revocations", _instant("revoked_before"))

#: Revision 0011: console sessions signed out, each until it would have expired anyway
#: (then purged): every replica refuses a signed-out session's cookie, after a restart too.
console_signouts = _table(
    "console_signouts",
    sa.Column("sid", sa.String(64), primary_key=True),
    _instant("expires_at"),
    sa.Index(None, "expires_at"),
)
