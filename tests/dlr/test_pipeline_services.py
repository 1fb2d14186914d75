"""The pipeline's services constructed directly: the simulator as the carrier's transport, a
real state store (SQLite and PostgreSQL), no HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bandwidth.client import BandwidthClient
from gateway.dlr.address import normalize
from gateway.dlr.callers import CallerIndex
from gateway.dlr.pipeline import Outcome, Pipeline, Report, Superseded, Unroutable
from gateway.dlr.pipeline.records import Change
from gateway.geocoding.service import build_geocoding
from gateway.metrics import Metrics
from gateway.simulator import SimulatorTransport
from gateway.store import StateStore, open_store
from tests.harness import EMPIRE_STATE, WHITE_HOUSE, gateway_settings, new_simulator
from tests.store.conftest import BACKENDS, _database

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    pipeline: Pipeline
    store: StateStore
    callers: CallerIndex
    calls: Callable[[], list[dict[str, Any]]]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _database(request.param, request, tmp_path).url


def report(aeui: str, address: str, seconds: float, **changes: Any) -> Report:
    fields: dict[str, Any] = {
        "alternate_end_user_id": aeui,
        "caller_name": "ALICE SMITH",
        "telephone_number": "+12025550143",
        "observed_at": T0 + timedelta(seconds=seconds),
        "address": address,
        **changes,
    }
    return Report(**fields)


@contextlib.asynccontextmanager
async def world(url: str, simulator: Any = None) -> AsyncIterator[World]:
    settings = gateway_settings()
    sim = simulator if simulator is not None else new_simulator(settings)
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        carrier = BandwidthClient.from_settings(
            settings, transport=SimulatorTransport(app=sim), metrics=metrics
        )
        stack.push_async_callback(carrier.aclose)
        http = httpx.AsyncClient()
        stack.push_async_callback(http.aclose)
        store = await open_store(url, create=True)
        stack.push_async_callback(store.close)
        callers = CallerIndex(1000)
        pipeline = Pipeline(
            carrier,
            build_geocoding(settings, metrics, http),
            normalize,
            ledger=store,
            callers=callers,
        )
        stack.push_async_callback(pipeline.aclose)
        log = sim.state.simulator
        yield World(pipeline, store, callers, lambda: log.calls)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())


def operations(calls: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("operation")) for c in calls]


def test_a_new_device_is_written_then_an_unchanged_report_costs_no_call(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            first = await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            assert (first.location, first.endpoint) == (Change.CREATED, Change.CREATED)
            row = await w.store.get("ann")
            assert row is not None and row.confirmed
            assert row.location_id == first.binding.location_id
            assert [b.aeui for b in w.callers.lookup("+12025550143")] == ["ann"]
            before = len(w.calls())
            again = await w.pipeline.report(report("ann", WHITE_HOUSE, 10))
            assert not again.changed
            assert len(w.calls()) == before
            advanced = await w.store.get("ann")
            assert advanced is not None and advanced.observed_at == T0 + timedelta(seconds=10)

    run(main)


def test_a_move_updates_the_endpoint_and_an_older_report_is_superseded(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            moved: Outcome = await w.pipeline.report(report("ann", EMPIRE_STATE, 5))
            assert (moved.location, moved.endpoint) == (Change.CREATED, Change.UPDATED)
            with pytest.raises(Superseded):
                await w.pipeline.report(report("ann", WHITE_HOUSE, 1))
            row = await w.store.get("ann")
            assert row is not None and row.location_id == moved.binding.location_id
            current = await w.pipeline.current("ann")
            assert current is not None and current.location_id == moved.binding.location_id

    run(main)


def test_an_unroutable_address_writes_nothing(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            with pytest.raises(Unroutable):
                await w.pipeline.report(report("ann", "nowhere at all", 0))
            assert w.calls() == []
            assert await w.store.get("ann") is None

    run(main)


def test_a_new_pipeline_on_the_same_store_knows_the_device(url: str) -> None:
    async def main() -> None:
        sim = new_simulator(gateway_settings())
        async with world(url, sim) as w:
            await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
        async with world(url, sim) as restarted:
            before = len(restarted.calls())
            again = await restarted.pipeline.report(report("ann", WHITE_HOUSE, 10))
            assert not again.changed
            assert operations(restarted.calls()[before:]) == []

    run(main)
