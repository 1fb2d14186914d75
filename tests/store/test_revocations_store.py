"""Revoked device tokens in the state store (migration 0010), on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from gateway.store import head_revision, open_store, upgrade
from gateway.store import migrate as migrate_module
from gateway.store import sql as sql_module
from gateway.store.migrate import alembic_config
from gateway.store.revocations import SqlRevocationStore
from gateway.store.sql import SqlStateStore
from tests.store.conftest import Database
from tests.store.helpers import binding, run

T0 = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


def test_a_revocation_is_kept_and_only_moves_forward(db: Database) -> None:
    async def main() -> None:
        async with await open_store(db.url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            revocations = SqlRevocationStore(store)
            assert await revocations.get("laptop") is None
            assert await revocations.load() == {}
            assert await revocations.revoke("laptop", T0) == T0
            assert await revocations.revoke("laptop", T0) == T0  # idempotent
            later = T0 + timedelta(seconds=30)
            assert await revocations.revoke("laptop", later) == later
            # An earlier instant (another replica's clock behind) never moves it back.
            assert await revocations.revoke("laptop", T0) == later
            assert await revocations.revoke("dept/desk", T0) == T0
            assert await revocations.get("laptop") == later
        # A new store on the same database: what a restart or another replica reads.
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            assert await SqlRevocationStore(store).load() == {"laptop": later, "dept/desk": T0}

    run(main())


def _to(revision: str) -> Callable[[sa.Connection], None]:
    """Migrate a connection up or down to ``revision``."""

    def migrate(connection: sa.Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if revision < (migrate_module.current_revision(connection) or ""):
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return migrate


def _tables(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def test_migration_0010_up_and_down(db: Database) -> None:
    async def main() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                await connection.run_sync(_to("0009"))
                await connection.commit()
                assert "token_revocations" not in await connection.run_sync(_tables)
                await connection.run_sync(_to("0010"))
                await connection.commit()
                assert "token_revocations" in await connection.run_sync(_tables)
            await SqlRevocationStore(store).revoke("laptop", T0)
            async with store.engine.connect() as connection:
                await connection.run_sync(_to("0009"))
                await connection.commit()
                assert "token_revocations" not in await connection.run_sync(_tables)
                assert await connection.run_sync(migrate_module.current_revision) == "0009"
            await store.upgrade()
            assert await store.revision() == head_revision() == "0010"
            assert await SqlRevocationStore(store).load() == {}

    run(main())


def test_the_previous_release_runs_on_the_new_schema(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0010 is additive: its floor stays below it, so a release whose head is 0009 starts
    on it (PostgreSQL's check, embedded SQLite's self-upgrade) and does its work."""
    upgrade(db.url)

    async def seed() -> None:
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            await SqlRevocationStore(store).revoke("laptop", T0)

    run(seed())
    monkeypatch.setattr(migrate_module, "head_revision", lambda: "0009")
    monkeypatch.setattr(sql_module, "head_revision", lambda: "0009")

    async def previous_release() -> None:
        for create in (False, True):
            async with await open_store(db.url, create=create) as store:
                assert isinstance(store, SqlStateStore)
                assert (await store.claim(binding(f"old-{create}"), credential="t")).won
                assert await store.revision() == "0010"  # left as it was

    run(previous_release())
