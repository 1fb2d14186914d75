"""``python -m bench.console``: the operator console's pages with 100 000 devices against 1 000.

Each page is served in process (the gateway's ASGI app, its store an SQLite file prefilled
with N devices and some history), signed in as an operator, and timed over ``--rounds``
requests; the figure is each page's median at 100 000 devices as a ratio to its median at
1 000 (the baseline, measured in the same invocation). A page paged in the database costs
about the same at both sizes; one that loaded everything would cost ~100x.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.datastructures import Secret

from gateway.app import SANDBOX_PREFIX, create_app
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig, create_simulator
from gateway.store import StateStore
from gateway.store.sql import SqlStateStore, to_us
from gateway.store.tables import devices, history

ADMIN_KEY = "bench-admin-key-0123456789"
PAGES = (
    "/console/",
    "/console/devices",
    "/console/devices?after=dev-0000500",
    "/console/devices?q=%2B12022000777",
    "/console/devices?q=dev-00005",
    "/console/devices/dev-0000042",
    "/console/calls",
    "/console/failures",
    "/console/map",
)


def _number(i: int) -> str:
    return f"+1202{200 + i // 10_000:03d}{i % 10_000:04d}"


async def _fill(url: str, count: int) -> None:
    store = await StateStore.open(url, create=True)
    now = to_us(datetime.now(UTC))
    try:
        assert isinstance(store, SqlStateStore)
        async with store.transaction() as connection:
            await connection.execute(
                devices.insert(),
                [
                    {
                        "aeui": f"dev-{i:07d}",
                        "endpoint_id": f"e{i}",
                        "location_id": f"loc-{i % 500}",
                        "address": None,
                        "caller_name": f"ROOM {i}",
                        "telephone_number": _number(i),
                        "observed_at": now,
                        "source": "report",
                        "applied_at": now,
                        "confirmed": i % 1000 != 3,
                        "latitude": 40.0 + (i % 1000) / 1000,
                        "longitude": -100.0 + (i // 1000) / 100,
                        "version": 1,
                    }
                    for i in range(count)
                ],
            )
            await connection.execute(
                history.insert(),
                [
                    {
                        "aeui": f"dev-{i % count:07d}",
                        "at": now,
                        "credential": "bench",
                        "source": "report",
                        "kind": "emergency_query" if i % 10 == 0 else "applied",
                    }
                    for i in range(count)
                ],
            )
    finally:
        await store.close()


async def _measure(count: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'state.db'}"
        await _fill(url, count)
        settings = replace(
            Settings(admin_keys=(Secret(ADMIN_KEY),)).for_sandbox(
                f"http://bench{SANDBOX_PREFIX}/api"
            ),
            database_url=url,
            reconcile_interval=0.0,
        )
        simulator = create_simulator(
            SimulatorConfig(
                account_id=settings.bandwidth_account_id,
                username=settings.bandwidth_username,
                password=str(settings.bandwidth_password),
            )
        )
        app = create_app(settings, sandbox_app=simulator)
        medians: dict[str, float] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                form = await http.get("/console/signin")
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert csrf is not None
                signed = await http.post(
                    "/console/signin",
                    data={"csrf": csrf.group(1), "key": ADMIN_KEY, "next": "/console/"},
                )
                assert signed.status_code == 303, signed.text
                for page in PAGES:
                    times = []
                    for _ in range(rounds):
                        started = time.perf_counter()
                        answer = await http.get(page)
                        times.append(time.perf_counter() - started)
                        assert answer.status_code == 200, (page, answer.status_code)
                    medians[page] = statistics.median(times)
        return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    base = asyncio.run(_measure(args.baseline, args.rounds))
    big = asyncio.run(_measure(args.devices, args.rounds))
    print(f"| page | median, {args.baseline:,} devices | median, {args.devices:,} | ratio |")
    print("| --- | --- | --- | --- |")
    for page in PAGES:
        print(
            f"| `{page}` | {1000 * base[page]:.1f} ms | {1000 * big[page]:.1f} ms "
            f"| {big[page] / base[page]:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
