"""Async engines for each backend, and the translation of connectivity failures.

SQLite (aiosqlite): WAL, a busy timeout, foreign keys, and explicit transactions —
``BEGIN IMMEDIATE`` for writes, so two processes never deadlock upgrading a read lock, and a
plain ``BEGIN`` for reads. One connection serves the whole process (the store serializes its
units of work; SQLite has a single writer anyway), and a second is kept by the batched
advance of unchanged reports; an in-memory database uses a ``StaticPool`` so that every unit
of work sees the same database.

PostgreSQL (asyncpg): a bounded pool that pings connections before use (a restarted server
costs one failed request, not a poisoned pool), with connect and per-statement timeouts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from gateway.store.errors import StoreUnavailable
from gateway.store.urls import is_memory, is_sqlite

#: Execution option: this unit of work only reads (SQLite then begins a deferred transaction).
READ_ONLY = "dlr_read_only"

MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING (3.35), UPDATE ... FROM (3.33), NULLS FIRST (3.30)

#: SQLSTATE classes and codes that mean "the database is not serving now", not "bad SQL".
UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "57014", "58")


def make_engine(
    url: URL,
    *,
    pool_size: int = 10,
    connect_timeout: float = 5.0,
    command_timeout: float = 10.0,
) -> AsyncEngine:
    if is_sqlite(url):
        return _sqlite_engine(url, busy_timeout=command_timeout)
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=command_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
            "server_settings": {"application_name": "dlr-gateway"},
        },
    )


def _sqlite_engine(url: URL, *, busy_timeout: float) -> AsyncEngine:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old: the store needs {need}")
    options: dict[str, Any] = {"connect_args": {"timeout": busy_timeout}}
    if is_memory(url):
        options["poolclass"] = StaticPool
    else:
        # One for the units of work (the store runs one at a time), one the advance keeps.
        options.update(pool_size=2, max_overflow=0, pool_timeout=None)
    engine = create_async_engine(url, **options)
    busy_ms = int(busy_timeout * 1000)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={busy_ms}",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    for source in (orig, getattr(orig, "__cause__", None)):
        for name in ("sqlstate", "pgcode"):
            value = getattr(source, name, None)
            if isinstance(value, str) and value:
                return value
    return ""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot serve now (as opposed to a bug or bad data)."""
    if isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError
        | OSError
        | TimeoutError,
    ):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or _sqlstate(exc).startswith(UNAVAILABLE_SQLSTATES)
    return False


def is_missing_table(exc: BaseException) -> bool:
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    return _sqlstate(exc) == "42P01" or "no such table" in str(exc.orig)


def describe(exc: BaseException) -> str:
    """A one-line reason, without the SQL statement or its parameters."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    """Translate every connectivity or timeout failure into ``StoreUnavailable``."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        # SQLite says "no such table" with an OperationalError: that is a schema problem.
        if is_unavailable(exc) and not is_missing_table(exc):
            raise StoreUnavailable(f"the state store is unavailable: {describe(exc)}") from exc
        raise
