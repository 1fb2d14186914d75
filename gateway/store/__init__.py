"""Durable state shared by every replica: devices' bindings, known locations, history.

Two backends behind one interface (``StateStore``): PostgreSQL for production with several
replicas, SQLite as the embedded default. ``GATEWAY_DATABASE_URL`` picks one; migrations are
Alembic's, run by ``dlr-gateway db upgrade`` (and by ``serve`` itself on embedded SQLite).
"""

from __future__ import annotations

# The wiremap's tables join the metadata here, so that it is whole wherever it is used.
from gateway.store import wiremap as _wiremap  # noqa: F401
from gateway.store.base import Claim, HistoryEntry, HistoryKind, StateStore, StoredBinding
from gateway.store.errors import (
    UPGRADE_COMMAND,
    SchemaNotCurrent,
    SchemaTooNew,
    StoreUnavailable,
)
from gateway.store.migrate import head_revision, upgrade, upgrade_async
from gateway.store.sql import SqlStateStore
from gateway.store.urls import MEMORY_URL, default_url, is_embedded, is_memory, redacted

__all__ = [
    "MEMORY_URL",
    "UPGRADE_COMMAND",
    "Claim",
    "HistoryEntry",
    "HistoryKind",
    "SchemaNotCurrent",
    "SchemaTooNew",
    "SqlStateStore",
    "StateStore",
    "StoreUnavailable",
    "StoredBinding",
    "default_url",
    "head_revision",
    "is_embedded",
    "is_memory",
    "redacted",
    "upgrade",
    "upgrade_async",
]
