"""``dlr-gateway db upgrade | current``: the schema of the state store, from the command line.

Each test runs in an empty directory (``Settings`` also reads a ``.env`` in the working
directory) with the database variables set by the test. PostgreSQL comes from ``tests/pg.py``
(a throwaway cluster on loopback, or ``GATEWAY_TEST_POSTGRES_URL``); its trust auth accepts any
password, so the URLs here carry one, which must never be printed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gateway.cli import EXIT_DATABASE, EXIT_NOT_CURRENT, main
from gateway.settings import NO_DATABASE
from gateway.store import SqlStateStore, head_revision
from gateway.store.urls import DATABASE_FILE
from tests.pg import PostgresServer

#: In every URL here; never in what the command prints.
PASSWORD = "pw-Never-Printed-7f3a"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GATEWAY_DATABASE_URL", "GATEWAY_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database, as an operator writes it: ``postgresql://user:password@host/db``.

    The throwaway server's trust auth takes ``PASSWORD``; a configured server keeps its own.
    """
    url = postgres.create_database()
    parsed = make_url(url)
    yield parsed.set(
        drivername="postgresql", password=parsed.password or PASSWORD
    ).render_as_string(hide_password=False)
    postgres.drop_database(url)


def db(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["db", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- SQLite: the embedded default -------------------------------------------------------------


def test_sqlite_upgrade_creates_the_directory_and_the_schema(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "state" / "nested"
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(data_dir))
    head = head_revision()

    code, out, err = db(capsys, "current")
    assert (code, err) == (EXIT_NOT_CURRENT, "")
    assert "no schema" in out
    assert "dlr-gateway db upgrade" in out
    assert not data_dir.exists(), "`current` creates nothing"

    code, out, err = db(capsys, "upgrade")
    assert (code, err) == (0, "")
    database = data_dir / DATABASE_FILE
    assert str(database) in out
    assert f"schema: {head} (head), upgraded from no schema" in out
    assert {"devices", "locations", "alembic_version"} <= tables(database)

    code, out, _ = db(capsys, "upgrade")
    assert code == 0
    assert f"schema: {head} (head), already current" in out

    code, out, _ = db(capsys, "current")
    assert code == 0
    assert f"schema: {head} (head), current" in out


def test_database_url_wins_over_the_data_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "unused"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'chosen.db'}")
    code, out, _ = db(capsys, "upgrade")
    assert code == 0
    assert "chosen.db" in out
    assert (tmp_path / "chosen.db").is_file()
    assert not (tmp_path / "unused").exists()


def test_default_data_dir_is_relative_to_the_working_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, _ = db(capsys, "upgrade")
    assert code == 0
    assert (tmp_path / "data" / DATABASE_FILE).is_file()


def test_settings_that_cannot_name_a_database_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in (
        f"mysql://dlr:{PASSWORD}@127.0.0.1/dlr",
        f"postgresql://dlr:{PASSWORD}@127.0.0.1:port/dlr",
        "sqlite://",  # in memory: one process only
        NO_DATABASE,  # no state store at all
    ):
        monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
        code, out, err = db(capsys, "upgrade")
        assert code == 2, url
        assert err.startswith("dlr-gateway: GATEWAY_DATABASE_URL"), err
        assert PASSWORD not in out + err


# --- PostgreSQL --------------------------------------------------------------------------------


def test_postgresql_upgrade_current_and_the_password_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", postgres_url)
    password = make_url(postgres_url).password
    assert password
    head = head_revision()
    printed = ""

    code, out, err = db(capsys, "current")
    printed += out + err
    assert code == EXIT_NOT_CURRENT
    assert "no schema" in out

    code, out, err = db(capsys, "upgrade")
    printed += out + err
    assert (code, err) == (0, "")
    assert f"database: {make_url(postgres_url).render_as_string(hide_password=True)}" in out
    assert f"schema: {head} (head), upgraded from no schema" in out

    code, out, err = db(capsys, "upgrade")
    printed += out + err
    assert code == 0
    assert "already current" in out

    code, out, err = db(capsys, "current")
    printed += out + err
    assert code == 0
    assert f"schema: {head} (head), current" in out
    assert password not in printed

    async def schema_is_current() -> bool:
        store = await SqlStateStore.connect(postgres_url)  # refuses a schema not at head
        try:
            return await store.schema_is_current()
        finally:
            await store.close()

    assert asyncio.run(schema_is_current())


def test_postgresql_unreachable_exits_1_with_a_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"postgresql://dlr:{PASSWORD}@127.0.0.1:{port}/dlr")
    for command in ("upgrade", "current"):
        code, out, err = db(capsys, command)
        assert code == EXIT_DATABASE, command
        assert err.startswith(
            f"dlr-gateway: cannot reach the database at postgresql://dlr:***@127.0.0.1:{port}/dlr:"
        ), err
        assert "Traceback" not in err
        assert PASSWORD not in out + err


def test_unreachable_from_the_installed_command(tmp_path: Path) -> None:
    """The real process: exit status 1, one message, no traceback, no password."""
    url = f"postgresql://dlr:{PASSWORD}@127.0.0.1:{closed_port()}/dlr"
    env = {**os.environ, "GATEWAY_DATABASE_URL": url}
    result = subprocess.run(  # a fixed argv, loopback only
        [sys.executable, "-m", "gateway", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_DATABASE
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("dlr-gateway: cannot reach the database at "), result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def _stamp(path: Path, revision: str, floor: str) -> None:
    """What a later release's migration leaves behind: its revision and the schema's floor."""
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        connection.execute("UPDATE dlr_schema SET compatible_since = ?", (floor,))


def test_a_newer_schema_after_a_rollback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = tmp_path / "rollback.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{database}")
    assert db(capsys, "upgrade")[0] == 0

    _stamp(database, "9998", "0001")  # a newer release, additive: this one may run on it
    for command in ("current", "upgrade"):
        code, out, err = db(capsys, command)
        assert (code, err) == (0, ""), command
        assert "schema: 9998, newer than this release's" in out and "usable" in out

    _stamp(database, "9999", "9999")  # a newer release this one cannot run beside
    for command in ("current", "upgrade"):
        code, out, err = db(capsys, command)
        assert code == EXIT_NOT_CURRENT, command
        assert "newer than this release can use" in err
        assert "Traceback" not in err
