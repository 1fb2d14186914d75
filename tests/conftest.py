from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import SKIP_ENV, PostgresServer, running_postgres, skip_requested


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
