"""Migrations, the schema check, the embedded defaults, and an unreachable database."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import (
    MEMORY_URL,
    SchemaNotCurrent,
    SchemaTooNew,
    StoreUnavailable,
    default_url,
    head_revision,
    is_embedded,
    open_store,
    upgrade,
)
from gateway.store.mapping import from_us
from gateway.store.migrate import alembic_config
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices, metadata
from gateway.store.urls import parse, redacted
from tests.pg import URL_ENV, PostgresServer
from tests.store.conftest import Database
from tests.store.helpers import at, binding, run


def test_schema_check_and_upgrade(db: Database) -> None:
    with pytest.raises(SchemaNotCurrent, match="dlr-gateway db upgrade"):
        run(open_store(db.url))

    async def unmigrated() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert not await store.schema_is_current()
            # Used anyway: the same clear error, not a confusing SQL one.
            with pytest.raises(SchemaNotCurrent, match="dlr-gateway db upgrade"):
                await store.get("device-1")

    run(unmigrated())
    upgrade(db.url)
    upgrade(db.url)  # idempotent

    async def migrated() -> None:
        async with await open_store(db.url) as store:
            assert await store.schema_is_current()
            assert isinstance(store, SqlStateStore)
            assert await store.revision() == head_revision() == "0013"
            await store.claim(binding(observed=1), credential="device")
        async with await open_store(db.url, create=True) as store:  # again: a no-op
            assert (await store.get("device-1")) is not None

    run(migrated())


def test_concurrent_upgrades(db: Database) -> None:
    """Replicas starting at once (SQLite: two processes' worth of connections)."""

    async def main() -> None:
        stores = await asyncio.gather(*(open_store(db.url, create=True) for _ in range(4)))
        for store in stores:
            assert await store.schema_is_current()
            await store.close()

    run(main())


def test_metadata_matches_the_migrations(db: Database) -> None:
    async def main() -> None:
        async with await open_store(db.url, create=True) as store:
            assert isinstance(store, SqlStateStore)

            def diff(connection: sa.Connection) -> list[object]:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                return list(compare_metadata(context, metadata))

            async with store.engine.connect() as connection:
                assert await connection.run_sync(diff) == []

    run(main())


def test_an_endpoint_delete_finds_its_device_by_index(db: Database) -> None:
    """``bound_to`` runs on every endpoint delete: it must not scan every device."""

    async def main() -> tuple[set[str], str]:
        async with await open_store(db.url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            await store.claim(binding(observed=1), credential="device")
            assert [b.aeui for b in await store.bound_to(binding().endpoint_id)] == ["device-1"]
            query = sa.select(devices).where(devices.c.endpoint_id == "e-1").limit(2)

            def inspect(connection: sa.Connection) -> tuple[set[str], str]:
                indexes = sa.inspect(connection).get_indexes("devices")
                named = {str(i["name"]) for i in indexes if i["column_names"] == ["endpoint_id"]}
                if connection.dialect.name != "sqlite":
                    return named, ""
                compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
                return named, " ".join(str(row[-1]) for row in plan)

            async with store.engine.connect() as connection:
                return await connection.run_sync(inspect)

    named, plan = run(main())
    assert named == {"ix_devices_endpoint_id"}
    if db.backend == "sqlite":
        assert "USING INDEX ix_devices_endpoint_id" in plan, plan


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unreachable_database(backend: str, tmp_path: Path) -> None:
    if backend == "postgresql":
        url = f"postgresql://postgres:s3cret@127.0.0.1:{_closed_port()}/gateway"
    else:
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'store.db'}"

    async def main() -> StoreUnavailable:
        with pytest.raises(StoreUnavailable) as raised:
            await open_store(url, connect_timeout=1)
        # aiosqlite's worker thread answers a failed connect late: let it, before the loop ends.
        await asyncio.sleep(0.1)
        return raised.value

    error = run(main())
    assert "s3cret" not in str(error)
    if backend == "postgresql":
        with pytest.raises(StoreUnavailable):
            upgrade(url)


def test_postgresql_gone_and_back(postgres: PostgresServer) -> None:
    """The server stops under a running store: 503-worthy errors, then it recovers."""
    if not postgres.owned:
        pytest.skip(f"{URL_ENV} names a server this suite must not stop")
    server = postgres
    db = Database("postgresql", server.create_database(), server)

    async def main() -> None:
        async with await open_store(db.url, create=True, command_timeout=2) as store:
            await store.claim(binding(observed=1), credential="device")
            await store.ping()
            server.stop()
            try:
                for operation in (
                    store.ping(),
                    store.get("device-1"),
                    store.advance("device-1", at(2)),
                    store.claim(binding(observed=3), credential="device"),
                    store.lease("r", limit=1, lease_seconds=1),
                ):
                    with pytest.raises(StoreUnavailable):
                        await operation
            finally:
                server.start()
            await store.ping()
            assert await store.advance("device-1", at(2))
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(2)

    try:
        run(main())
    finally:
        server.drop_database(db.url)


def test_in_memory_sqlite_is_one_shared_database() -> None:
    async def main() -> None:
        async with await open_store(MEMORY_URL, create=True) as store:
            assert await store.schema_is_current()
            results = await asyncio.gather(
                *(
                    store.claim(binding(f"d{i}", observed=i), credential="device")
                    for i in range(50)
                ),
                *(store.get(f"d{i}") for i in range(50)),
            )
            assert all(r.won for r in results[:50])
            assert all([await store.get(f"d{i}") is not None for i in range(50)])
        # A new store is a new, empty database.
        async with await open_store("sqlite://", create=True) as store:
            assert await store.get("d1") is None

    run(main())


def test_urls(tmp_path: Path) -> None:
    url = default_url(tmp_path / "data")
    assert url == f"sqlite+aiosqlite:///{tmp_path}/data/dlr-gateway.db"
    assert is_embedded(url) and is_embedded(MEMORY_URL)
    assert not is_embedded("postgresql://u:p@db/gateway")
    assert parse("postgresql://u:p@db/gateway").drivername == "postgresql+asyncpg"
    assert parse("postgres://u:p@db/gateway").drivername == "postgresql+asyncpg"
    assert parse("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert "p@" not in redacted("postgresql://u:p@db/gateway")
    with pytest.raises(ValueError, match="unsupported database"):
        parse("mysql://u:p@db/gateway")

    # The embedded default migrates itself into a directory that does not exist yet.
    async def main() -> None:
        async with await open_store(url, create=True) as store:
            await store.claim(binding(observed=1), credential="device")

    run(main())
    assert (tmp_path / "data" / "dlr-gateway.db").exists()


def _pretend_a_newer_release_migrated(url: str, revision: str, floor: str) -> None:
    """What a later release's ``db upgrade`` leaves: a newer revision and its floor."""

    async def main() -> None:
        async with await open_store(url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.begin() as connection:
                await connection.execute(
                    sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
                )
                await connection.execute(
                    sa.text("UPDATE dlr_schema SET compatible_since = :f"), {"f": floor}
                )

    run(main())


def test_a_rollback_runs_on_a_newer_compatible_schema(db: Database) -> None:
    """Rolling back a deployment needs no downgrade while the newer schema says so."""
    _pretend_a_newer_release_migrated(db.url, "9998", "0001")

    async def main() -> None:
        for create in (False, True):  # PostgreSQL's check, and embedded SQLite's self-upgrade
            async with await open_store(db.url, create=create) as store:
                assert (await store.claim(binding("rollback"), credential="t")).won
                assert isinstance(store, SqlStateStore)
                assert await store.revision() == "9998"  # left as it was

    run(main())
    upgrade(db.url)  # `dlr-gateway db upgrade` of the older release: a no-op, not an error


def test_a_schema_too_new_for_this_release_is_refused_clearly(db: Database) -> None:
    _pretend_a_newer_release_migrated(db.url, "9999", "9999")

    async def main() -> None:
        for create in (False, True):
            with pytest.raises(SchemaTooNew) as raised:
                await open_store(db.url, create=create)
            assert "newer release" in str(raised.value) and "9999" in str(raised.value)

    run(main())
    with pytest.raises(SchemaTooNew):
        upgrade(db.url)


def test_an_older_schema_is_still_not_current(db: Database) -> None:
    upgrade(db.url)

    async def main() -> None:
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.begin() as connection:
                await connection.execute(sa.text("UPDATE alembic_version SET version_num='0002'"))
        with pytest.raises(SchemaNotCurrent) as raised:
            await open_store(db.url)
        assert not isinstance(raised.value, SchemaTooNew)
        assert "dlr-gateway db upgrade" in str(raised.value)

    run(main())


def test_migration_0004_gives_existing_numbers_owners_as_they_stand(db: Database) -> None:
    """A number one device holds becomes that device's; one several devices hold becomes
    shared (what the call-time query answered before), for an admin to review."""

    def to_0003(connection: sa.Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")

    async def main() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                await connection.run_sync(to_0003)
                await connection.commit()
            rows = [
                ("alone", "+12025550101"),
                ("desk", "+12025550102"),
                ("laptop", "+12025550102"),
            ]
            async with store.engine.begin() as connection:
                for aeui, number in rows:
                    await connection.execute(
                        sa.text(
                            "INSERT INTO devices (aeui, endpoint_id, location_id, caller_name, "
                            "telephone_number, observed_at, source, applied_at, confirmed, "
                            "version) VALUES (:aeui, 'E', 'L', 'N', :number, 1, 'report', 7, "
                            "true, 1)"
                        ),
                        {"aeui": aeui, "number": number},
                    )
            await store.upgrade()
            alone = await store.number("+12025550101")
            assert alone is not None and (alone.owner, alone.shared) == ("alone", False)
            both = await store.number("+12025550102")
            assert both is not None and (both.owner, both.shared) == (None, True)
            row = await store.get("desk")
            assert row is not None and row.heard_at == from_us(7) and not row.attested
            assert [b.aeui for b in await store.callers("+12025550102")] == ["desk", "laptop"]

    run(main())
