"""Revoked device tokens and console sign-outs in the state store (migrations 0010 and
0011), and the history and events indexes (0012), on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from gateway.store import head_revision, open_store, upgrade
from gateway.store import migrate as migrate_module
from gateway.store.migrate import alembic_config
from gateway.store.revocations import SqlRevocationStore
from gateway.store.signouts import SqlSignOutStore
from gateway.store.sql import SqlStateStore
from tests.store.conftest import Database
from tests.store.helpers import as_release, previous_release_store, run

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


#: The additive revisions tested here: each one's table.
ADDITIVE = [("0010", "token_revocations"), ("0011", "console_signouts")]


def _before(revision: str) -> str:
    return f"{int(revision) - 1:04d}"


@pytest.mark.parametrize(("revision", "table"), ADDITIVE)
def test_a_migration_up_and_down(db: Database, revision: str, table: str) -> None:
    async def main() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                await connection.run_sync(_to(_before(revision)))
                await connection.commit()
                assert table not in await connection.run_sync(_tables)
                await connection.run_sync(_to(revision))
                await connection.commit()
                assert table in await connection.run_sync(_tables)
            await SqlRevocationStore(store).revoke("laptop", T0)
            async with store.engine.connect() as connection:
                await connection.run_sync(_to(_before(revision)))
                await connection.commit()
                assert table not in await connection.run_sync(_tables)
                assert await connection.run_sync(migrate_module.current_revision) == _before(
                    revision
                )
            await store.upgrade()
            assert await store.revision() == head_revision()
            assert await SqlSignOutStore(store).load(T0) == {}

    run(main())


@pytest.mark.parametrize(("revision", "table"), ADDITIVE)
def test_the_previous_release_runs_on_the_new_schema(
    db: Database, monkeypatch: pytest.MonkeyPatch, revision: str, table: str
) -> None:
    """Each is additive: its floor stays below it, so a release whose head is the revision
    before starts on it (PostgreSQL's check, embedded SQLite's self-upgrade) and does its
    work."""
    upgrade(db.url)
    head = head_revision()

    async def seed() -> None:
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            await SqlRevocationStore(store).revoke("laptop", T0)
            await SqlSignOutStore(store).add("sid", T0, T0)

    run(seed())
    as_release(monkeypatch, _before(revision))

    async def previous_release() -> None:
        for create in (False, True):
            async with previous_release_store(db.url, head, create=create, aeui=f"old-{create}"):
                pass

    run(previous_release())


def test_a_sign_out_is_kept_until_it_would_have_expired(db: Database) -> None:
    later = T0 + timedelta(hours=8)

    async def main() -> None:
        async with await open_store(db.url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            signouts = SqlSignOutStore(store)
            await signouts.add("a", later, T0)
            await signouts.add("a", later, T0)  # twice (a retried form): once
            await signouts.add("b", T0 + timedelta(minutes=1), T0)
            assert await signouts.load(T0) == {"a": later, "b": T0 + timedelta(minutes=1)}
        # What a restart or another replica reads: past b's expiry, not b. A reload only
        # reads (every replica does it every few seconds); the next sign-out purges b.
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            signouts = SqlSignOutStore(store)
            assert await signouts.load(T0 + timedelta(minutes=1)) == {"a": later}
            assert await signouts.load(T0) == {"a": later, "b": T0 + timedelta(minutes=1)}
            await signouts.add("c", later, T0 + timedelta(minutes=1))
            assert await signouts.load(T0) == {"a": later, "c": later}  # b gone from the table

    run(main())


def _indexes_0012(connection: sa.Connection) -> set[str]:
    """The indexes of ``history`` and ``events`` (revision 0012 adds one to each)."""
    inspector = sa.inspect(connection)
    return {str(i["name"]) for t in ("history", "events") for i in inspector.get_indexes(t)}


#: Revision 0012's indexes.
ADDED = {"ix_history_kind_id", "ix_events_type_created_at_id"}


def test_the_history_kind_index_up_and_down_and_the_previous_release_on_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0012 adds ``ix_history_kind_id`` (the console's 911 calls page) and
    ``ix_events_type_created_at_id`` (``GET /v1/events?type=``) and takes them away again;
    additive, so a release whose head is 0011 still runs on it."""

    async def main() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                await connection.run_sync(_to("0011"))
                await connection.commit()
                assert not ADDED & await connection.run_sync(_indexes_0012)
                await connection.run_sync(_to("0012"))
                await connection.commit()
                assert await connection.run_sync(_indexes_0012) >= ADDED
                await connection.run_sync(_to("0011"))
                await connection.commit()
                assert not ADDED & await connection.run_sync(_indexes_0012)
            await store.upgrade()
            assert await store.revision() == head_revision()

    run(main())
    as_release(monkeypatch, "0011")

    async def previous_release() -> None:
        async with previous_release_store(db.url, head_revision(), create=True, aeui="old"):
            pass

    run(previous_release())
