from __future__ import annotations

import pytest

from .helpers import Harness, harness, location_xml


@pytest.fixture
def h() -> Harness:
    return harness()


@pytest.fixture
def with_location(h: Harness) -> Harness:
    """A harness whose account holds location ``LOC1`` (the White House)."""
    assert h.post("/locations", location_xml()).status_code == 201
    return h
