from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.metrics import Metrics

from .doubles import CountingGeocoder, FakeClock
from .fake_nominatim import FakeNominatim, Running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def counting() -> CountingGeocoder:
    return CountingGeocoder()


@pytest.fixture(scope="module")
def nominatim_server() -> Iterator[FakeNominatim]:
    with Running(FakeNominatim()) as fake:
        yield fake


@pytest.fixture
def nominatim(nominatim_server: FakeNominatim) -> Iterator[FakeNominatim]:
    nominatim_server.reset()
    yield nominatim_server
    nominatim_server.release.set()
