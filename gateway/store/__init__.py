"""Durable state shared by every replica: devices' bindings, known locations, history.

One interface (``StateStore``), opened by ``open_store``: PostgreSQL for production with
several replicas, SQLite as the embedded default. ``GATEWAY_DATABASE_URL`` picks one; migrations are
Alembic's, run by ``dlr-gateway db upgrade`` (and by ``serve`` itself on embedded SQLite).
"""

from __future__ import annotations

from gateway.store.base import Claim, HistoryEntry, HistoryKind, StateStore
from gateway.store.errors import (
    UPGRADE_COMMAND,
    SchemaNotCurrent,
    SchemaTooNew,
    StoreUnavailable,
)
from gateway.store.migrate import head_revision, upgrade, upgrade_async
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore, open_store
from gateway.store.urls import MEMORY_URL, default_url, is_embedded, is_memory, redacted

__all__ = [
    "MEMORY_URL",
    "UPGRADE_COMMAND",
    "Claim",
    "HistoryEntry",
    "HistoryKind",
    "OutboxStore",
    "SchemaNotCurrent",
    "SchemaTooNew",
    "SqlStateStore",
    "StateStore",
    "StoreUnavailable",
    "default_url",
    "head_revision",
    "is_embedded",
    "is_memory",
    "open_store",
    "redacted",
    "upgrade",
    "upgrade_async",
]
