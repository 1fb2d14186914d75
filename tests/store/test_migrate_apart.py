"""Alembic only where a migration runs: the revision read without it, ``serve``'s embedded
SQLite migrated in a child process, and the server's own process never loading it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.store import SchemaTooNew, head_revision, open_store, upgrade
from gateway.store.migrate import HEAD, alembic_config, current_revision, upgrade_apart
from gateway.store.sql import SqlStateStore
from tests.store.conftest import Database
from tests.store.helpers import run

REPOSITORY = Path(__file__).resolve().parents[2]


def test_head_is_the_newest_migration_alembic_finds() -> None:
    alembics = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head_revision() == HEAD == alembics


def _to(url: str, revision: str) -> None:
    """Migrate ``url`` to ``revision`` with Alembic's own command (an older release's)."""

    def migrate(connection: sa.Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async def main() -> None:
        async with await open_store(url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()

    run(main())


def _revisions(url: str) -> tuple[str | None, str | None]:
    """The revision as read here, and as Alembic reads it."""

    def both(connection: sa.Connection) -> tuple[str | None, str | None]:
        alembics = MigrationContext.configure(connection).get_current_revision()
        return current_revision(connection), alembics

    async def main() -> tuple[str | None, str | None]:
        async with await open_store(url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.connect() as connection:
                return await connection.run_sync(both)

    return run(main())


def test_the_revision_is_read_as_alembic_reads_it(db: Database) -> None:
    assert _revisions(db.url) == (None, None)
    _to(db.url, "0003")
    assert _revisions(db.url) == ("0003", "0003")
    upgrade(db.url)
    assert _revisions(db.url) == (HEAD, HEAD)


def test_upgrade_apart_migrates_a_file_in_a_child(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new' / 'store.db'}"
    assert run(upgrade_apart(url))  # no directory, no file: both made, then migrated
    assert _revisions(url) == (HEAD, HEAD)
    assert run(upgrade_apart(url))  # at head: nothing to do
    older = f"sqlite+aiosqlite:///{tmp_path / 'older.db'}"
    _to(older, "0004")
    assert run(upgrade_apart(older))
    assert _revisions(older) == (HEAD, HEAD)


def test_upgrade_apart_leaves_what_it_cannot_do_to_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not run(upgrade_apart("sqlite+aiosqlite://"))  # in memory: no other process sees it
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a child that fails
    assert not run(upgrade_apart(url))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))  # none at all
    assert not run(upgrade_apart(url))
    assert _revisions(url) == (None, None)

    async def main() -> None:  # what ``serve`` does next: the store migrates in process
        async with await open_store(url, create=True) as store:
            assert await store.schema_is_current()

    run(main())


def test_upgrade_apart_refuses_a_schema_too_new(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)

    async def newer() -> None:
        async with await open_store(url) as store:
            assert isinstance(store, SqlStateStore)
            async with store.engine.begin() as connection:
                await connection.execute(sa.text("UPDATE alembic_version SET version_num='9999'"))
                await connection.execute(sa.text("UPDATE dlr_schema SET compatible_since='9999'"))

    run(newer())
    with pytest.raises(SchemaTooNew):
        run(upgrade_apart(url))


#: A server's start in a fresh interpreter, as ``serve`` starts it (``create_app`` and its
#: lifespan): what it loaded, and the revision it left the database at.
_PROBE = """
import asyncio, json, sys
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import open_store

settings = Settings.from_environ()
app = create_app(settings)

async def main():
    async with app.router.lifespan_context(app):
        loaded = sorted(m for m in ("alembic", "mako", "sqlalchemy.dialects.postgresql")
                        if m in sys.modules)
    async with await open_store(settings.database_url) as store:
        return loaded, await store.revision()

loaded, revision = asyncio.run(main())
print(json.dumps({"loaded": loaded, "revision": revision}))
"""


def _serve_once(url: str, cwd: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BANDWIDTH_"))}
    env.update(
        GATEWAY_DATABASE_URL=url,
        BANDWIDTH_ACCOUNT_ID=SANDBOX_ACCOUNT_ID,
        BANDWIDTH_USERNAME=SANDBOX_USERNAME,
        BANDWIDTH_PASSWORD=SANDBOX_PASSWORD,
        BANDWIDTH_BASE_URL="http://127.0.0.1:9/api",  # never called during a start
        PYTHONPATH=str(REPOSITORY),
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
        timeout=120,
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_server_on_embedded_sqlite_never_loads_alembic_or_postgresql(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'store.db'}"
    fresh = _serve_once(url, tmp_path)  # migrated from nothing, in a child
    assert fresh == {"loaded": [], "revision": HEAD}
    again = _serve_once(url, tmp_path)  # at head already
    assert again == {"loaded": [], "revision": HEAD}
    older = f"sqlite+aiosqlite:///{tmp_path / 'older.db'}"
    _to(older, "0005")
    assert _serve_once(older, tmp_path) == {"loaded": [], "revision": HEAD}
