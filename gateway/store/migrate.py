"""Alembic, configured in code: the migrations ship inside the package, no ``alembic.ini``.

``upgrade(url)`` is the synchronous entry point behind ``dlr-gateway db upgrade``. Alembic
runs on the sync facade of the async engine (``AsyncConnection.run_sync``), so one driver
per backend (asyncpg, aiosqlite) serves both the service and its migrations.

Alembic (with Mako and SQLAlchemy's PostgreSQL dialect, a sizeable part of a process's
resident set: docs/benchmarks.md, "third pass") is imported only when a migration must run:
the database's revision is read with one ``SELECT`` from Alembic's own table, and this
release's head is ``HEAD`` (a test holds it to Alembic's). ``serve`` migrates an embedded
SQLite file in a short-lived child process (``upgrade_apart``), so that a server never
loads it.

Rollbacks: revisions are numbered in order ("0001", "0002", ...). A database a newer
release migrated is usable by this one when the schema's floor (``dlr_schema``, see
migration 0003) is at or below this release's head: the release then runs, and its own
``upgrade`` leaves the database as it is. Otherwise ``SchemaTooNew``.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.lean import without
from gateway.store.engine import make_engine, unavailable_as_store_error
from gateway.store.errors import SchemaTooNew
from gateway.store.urls import ensure_directory, is_memory, is_sqlite, parse

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"

#: The newest migration this release ships (``migrations/versions``): a new migration moves it.
HEAD = "0013"

#: Alembic's table of the database's revision (one row, one column: ``version_num``).
VERSION_TABLE = "alembic_version"

#: Longest a child process may take to migrate an embedded database (``upgrade_apart``).
CHILD_TIMEOUT = 600.0

_ONE_AT_A_TIME = threading.Lock()


def alembic_config() -> Config:
    # Mako's error pages would highlight with Pygments (gateway.lean): never rendered here.
    with without("mako.ext.pygmentplugin"):
        from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this release ships."""
    return HEAD


def current_revision(connection: sa.Connection) -> str | None:
    """The database's revision (``None``: never migrated), read as Alembic reads it."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:  # branches, which these migrations never make: Alembic's own error
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()
    return str(rows[0][0]) if rows else None


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
    current = current_revision(connection)
    if current == HEAD or ahead_but_usable(connection, current):
        return  # at head, or a newer release migrated it and this one runs on it: nothing to do
    from alembic import command

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


#: What the child of ``upgrade_apart`` runs: ``upgrade`` of the URL given as its argument.
_UPGRADE_IN_CHILD = "import sys; from gateway.store.migrate import upgrade; upgrade(sys.argv[1])"


async def upgrade_apart(url: str) -> bool:
    """Migrate an embedded SQLite file to head in a short-lived child process, so that
    Alembic never loads into the server; whether it is at head (or usable) afterwards
    (``SchemaTooNew`` for a newer one that is not). ``False`` when this could do nothing (not
    a SQLite file, no child process, the child failed): the caller's ``upgrade`` then
    migrates in process. A file already at head spawns nothing."""
    parsed = parse(url)
    if not is_sqlite(parsed) or is_memory(parsed):
        return False
    ensure_directory(parsed)
    engine = make_engine(parsed)
    try:
        with unavailable_as_store_error():
            async with engine.connect() as connection:
                current, usable = await connection.run_sync(revision_and_usable)
    finally:
        await engine.dispose()
    if current == HEAD or usable:
        return True
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _UPGRADE_IN_CHILD,
            url,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        log.warning("could not start a child process to migrate the database: %s", exc)
        return False
    try:
        async with asyncio.timeout(CHILD_TIMEOUT):
            _, stderr = await child.communicate()
    except TimeoutError:
        log.warning("the child process migrating the database took over %g s", CHILD_TIMEOUT)
        return False
    finally:
        if child.returncode is None:  # timed out, or the start was cancelled
            child.kill()  # its migration is one transaction: rolled back
            await child.wait()
    if child.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        log.warning("migrating the database in a child process failed: %s", tail[0])
        return False
    log.info("migrated the database from %s to %s", current or "no schema", HEAD)
    return True
