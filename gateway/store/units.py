"""A SQLAlchemy unit of work run whole on SQLite's driver thread: one hand-over, not one a
statement.

Through SQLAlchemy's asyncio layer, every statement, fetch and commit on aiosqlite is a
hand-over to the driver's thread and back, which costs more CPU than the statement itself
(``DriverPaths.run_unit``). Here the same SQLAlchemy statements run synchronously on that
thread, over the driver's own ``sqlite3`` connection, inside one ``BEGIN IMMEDIATE``
transaction: the code of a unit is written once, for a synchronous ``Connection``, and runs
unchanged through ``AsyncConnection.run_sync`` on the other paths.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

#: A synchronous engine over each aiosqlite connection's ``sqlite3`` connection, made on
#: its thread at its first unit and dropped with it.
_ENGINES: weakref.WeakKeyDictionary[Any, sa.Engine] = weakref.WeakKeyDictionary()


def _engine(driver: Any) -> sa.Engine:
    engine = _ENGINES.get(driver)
    if engine is None:
        raw: sqlite3.Connection = driver._conn
        # The pool hands out this one connection and never resets, closes or rolls it back
        # on its own: the unit commits or rolls back, and the store owns the connection.
        engine = sa.create_engine(
            "sqlite://", creator=lambda: raw, poolclass=StaticPool, pool_reset_on_return=None
        )
        with engine.connect():
            pass  # the dialect's first-connect set-up (it ends with a rollback): not in a unit
        _ENGINES[driver] = engine
    return engine


def run_on_driver_thread(driver: Any, work: Callable[[sa.Connection], T]) -> T:
    """``work`` in a ``BEGIN IMMEDIATE`` transaction on ``driver``'s connection, committed
    when it returns and rolled back when it raises. Call it on the driver's thread."""
    engine = _engine(driver)
    raw: sqlite3.Connection = driver._conn
    raw.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as connection:
            result = work(connection)
            connection.commit()
    finally:
        if raw.in_transaction:  # ``work`` raised, or the commit failed
            raw.rollback()
    return result
