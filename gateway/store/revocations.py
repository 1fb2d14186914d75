"""Revoked device tokens on the state store's database (PostgreSQL or SQLite).

One row per device (``gateway.store.tables.token_revocations``): the instant before which its
tokens are refused. A revocation only moves it forward, in one statement (an upsert keeping
the later instant), so two admins revoking at once at two replicas leave the later time.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gateway.store.mapping import from_us, insert_for, to_us
from gateway.store.tables import token_revocations

if TYPE_CHECKING:
    from gateway.store.sql import SqlStateStore


class SqlRevocationStore:
    """``RevocationStore`` (``gateway.api.revocations``) through the state store's units of
    work."""

    def __init__(self, state: SqlStateStore) -> None:
        self._state = state

    async def load(self) -> dict[str, datetime]:
        async with self._state.transaction(read_only=True) as connection:
            rows = await connection.execute(sa.select(token_revocations))
            return {row.aeui: from_us(row.revoked_before) for row in rows}

    async def get(self, aeui: str) -> datetime | None:
        query = sa.select(token_revocations.c.revoked_before).where(
            token_revocations.c.aeui == aeui
        )
        async with self._state.transaction(read_only=True) as connection:
            found = await connection.scalar(query)
        return None if found is None else from_us(found)

    async def revoke(self, aeui: str, before: datetime) -> datetime:
        async with self._state.transaction() as connection:
            insert = insert_for(connection, token_revocations).values(
                aeui=aeui, revoked_before=to_us(before)
            )
            later = sa.func.greatest if connection.dialect.name == "postgresql" else sa.func.max
            kept = later(token_revocations.c.revoked_before, insert.excluded.revoked_before)
            stored = await connection.scalar(
                insert.on_conflict_do_update(
                    index_elements=[token_revocations.c.aeui], set_={"revoked_before": kept}
                ).returning(token_revocations.c.revoked_before)
            )
        assert stored is not None
        return from_us(stored)
