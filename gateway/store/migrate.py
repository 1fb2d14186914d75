"""Alembic, configured in code: the migrations ship inside the package, no ``alembic.ini``.

``upgrade(url)`` is the synchronous entry point behind ``dlr-gateway db upgrade``. Alembic
runs on the sync facade of the async engine (``AsyncConnection.run_sync``), so one driver
per backend (asyncpg, aiosqlite) serves both the service and its migrations.

Rollbacks: revisions are numbered in order ("0001", "0002", ...). A database a newer
release migrated is usable by this one when the schema's floor (``dlr_schema``, see
migration 0003) is at or below this release's head: the release then runs, and its own
``upgrade`` leaves the database as it is. Otherwise ``SchemaTooNew``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.lean import without

# Mako's error pages would highlight with Pygments (gateway.lean): never rendered here.
with without("mako.ext.pygmentplugin"):
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

from gateway.store.engine import make_engine, unavailable_as_store_error
from gateway.store.errors import SchemaTooNew
from gateway.store.urls import ensure_directory, parse

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"

_ONE_AT_A_TIME = threading.Lock()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest migration this release ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: sa.Connection) -> str | None:
    """The database's revision (``None``: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def _number(revision: str | None) -> int | None:
    return int(revision) if revision is not None and revision.isdigit() else None


def schema_floor(connection: sa.Connection) -> str | None:
    """The oldest release head that may run on this database (``None``: not recorded)."""
    if not sa.inspect(connection).has_table("dlr_schema"):
        return None
    value = connection.execute(sa.text("SELECT compatible_since FROM dlr_schema")).scalar()
    return None if value is None else str(value)


def ahead_but_usable(connection: sa.Connection, current: str | None) -> bool:
    """Whether ``current`` is a newer release's revision that this release may run on.

    Raises ``SchemaTooNew`` when it is newer and this release is below its floor (or the
    floor is not recorded); false when it is this release's head, older, or absent.
    """
    head = head_revision()
    mine, theirs = _number(head), _number(current)
    if mine is None or theirs is None or theirs <= mine:
        return False
    floor = schema_floor(connection)
    lowest = _number(floor)
    if lowest is None or lowest > mine:
        raise SchemaTooNew(current, head, floor)
    return True


def revision_and_usable(connection: sa.Connection) -> tuple[str | None, bool]:
    """The database's revision, and whether this release may run on it though it is newer
    (``ahead_but_usable``)."""
    current = current_revision(connection)
    return current, ahead_but_usable(connection, current)


def upgrade_connection(connection: sa.Connection) -> None:
    if ahead_but_usable(connection, current_revision(connection)):
        return  # a newer release migrated it, and this one runs on it: nothing to do
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Migrate to head in one transaction (on SQLite too: its DDL is transactional).

    Alembic keeps its running migration in module globals (``alembic.context``,
    ``alembic.op``), so one process runs one migration at a time, whatever its threads and
    event loops; other processes wait on the database (PostgreSQL: an advisory lock in
    ``env.py``; SQLite: ``BEGIN IMMEDIATE``).
    """
    while not _ONE_AT_A_TIME.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock
        await asyncio.sleep(0.01)
    try:
        with unavailable_as_store_error():
            async with engine.connect() as connection:
                await connection.run_sync(upgrade_connection)
                await connection.commit()
    finally:
        _ONE_AT_A_TIME.release()


async def upgrade_async(url: str) -> None:
    parsed = parse(url)
    ensure_directory(parsed)
    engine = make_engine(parsed)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def upgrade(url: str) -> None:
    """Run every migration up to head; a database already at head is left as it is."""
    asyncio.run(upgrade_async(url))
