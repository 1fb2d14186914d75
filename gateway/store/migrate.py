"""Alembic, configured in code: the migrations ship inside the package, no ``alembic.ini``.

``upgrade(url)`` is the synchronous entry point behind ``dlr-gateway db upgrade``. Alembic
runs on the sync facade of the async engine (``AsyncConnection.run_sync``), so one driver
per backend (asyncpg, aiosqlite) serves both the service and its migrations.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import make_engine, unavailable_as_store_error
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


def upgrade_connection(connection: sa.Connection) -> None:
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
