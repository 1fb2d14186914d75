"""One suite, two backends: every test taking ``db`` runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.pg import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Database:
    backend: str
    url: str
    server: PostgresServer | None = None


class Clock:
    """A settable clock shared by the stores of one test (leases, history times)."""

    def __init__(self, start: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    request.addfinalizer(lambda: server.drop_database(url))
    return Database("postgresql", url, server)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh, empty (unmigrated) database on each backend."""
    return _database(request.param, request, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()
