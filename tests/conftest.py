from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests import helpers from scripts/ (the OpenAPI builder) without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from tests.pg import SKIP_ENV, PostgresServer, running_postgres, skip_requested


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server on loopback for the whole session."""
    if skip_requested():
        pytest.skip(f"{SKIP_ENV}=1: PostgreSQL tests skipped")
    with running_postgres() as server:
        yield server
