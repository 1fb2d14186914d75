from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pg import SKIP_ENV, PostgresServer, running_postgres, skip_requested

if TYPE_CHECKING:
    from gateway.settings import Settings


class _WithoutFullCollections:
    """The ``gc`` module as ``gateway.app`` sees it, but for ``collect``, which does nothing."""

    def __getattr__(self, name: str) -> object:
        return getattr(gc, name)

    @staticmethod
    def collect(generation: int = 2) -> int:
        return 0


@pytest.fixture(scope="session", autouse=True)
def _no_full_collection_per_gateway_start() -> Iterator[None]:
    """A gateway's start runs a full collection before it freezes the heap (gateway.app's
    ``_CollectorTuning``): once per process when serving, but once per test here, where it
    walks the whole test process's heap and was over a third of the suite's CPU time. The
    freeze and the threshold stay; tests of the collector take ``full_collection``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gateway.app.gc", _WithoutFullCollections())
        yield


@pytest.fixture
def full_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway's start collects as it does when serving (``gateway.app.gc`` the real one)."""
    monkeypatch.setattr("gateway.app.gc", gc)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server on loopback for the whole session."""
    if skip_requested():
        pytest.skip(f"{SKIP_ENV}=1: PostgreSQL tests skipped")
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on that server, migrated, dropped after the test."""
    from gateway.store import upgrade

    url = postgres.create_database()
    upgrade(url)
    yield url
    postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for replicas that share one database: a SQLite file, or a PostgreSQL."""
    from tests.harness import gateway_settings

    if request.param == "sqlite":
        yield gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    from gateway.store import upgrade

    upgrade(url)
    yield gateway_settings(database_url=url)
    server.drop_database(url)
