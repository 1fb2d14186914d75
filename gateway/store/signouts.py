"""Console sign-outs on the state store's database (PostgreSQL or SQLite).

One row per signed-out session (``gateway.store.tables.console_signouts``), kept until the
session would have expired anyway; a sign-out purges the rows past it (a reload only reads).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gateway.store.mapping import from_us, insert_for, to_us
from gateway.store.tables import console_signouts

if TYPE_CHECKING:
    from gateway.store.sql import SqlStateStore


class SqlSignOutStore:
    """``SignOutStore`` (``gateway.console.auth``) through the state store's units of work."""

    def __init__(self, state: SqlStateStore) -> None:
        self._state = state

    async def load(self, now: datetime) -> dict[str, datetime]:
        """The sign-outs still in force: a read, as every replica does it every few seconds."""
        table = console_signouts
        async with self._state.transaction(read_only=True) as connection:
            rows = await connection.execute(sa.select(table).where(table.c.expires_at > to_us(now)))
            return {row.sid: from_us(row.expires_at) for row in rows}

    async def add(self, sid: str, expires_at: datetime, now: datetime) -> None:
        """Record a sign-out, and purge the ones past their session's expiry."""
        table = console_signouts
        async with self._state.transaction() as connection:
            await connection.execute(sa.delete(table).where(table.c.expires_at <= to_us(now)))
            insert = insert_for(connection, table).values(sid=sid, expires_at=to_us(expires_at))
            await connection.execute(insert.on_conflict_do_nothing())
