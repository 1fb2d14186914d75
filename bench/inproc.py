"""The CPU cost of one request through the app alone: no sockets, no server, no other process.

    python -m bench.inproc [--path unchanged|changed|query|baseline] [--requests N] [--profile FILE]

Builds the gateway as ``dlr-gateway serve`` does (``create_app``, the production logging set-up
writing to ``/dev/null``), with the simulator in-process as its upstream (``SimulatorTransport``,
no latency), and calls the ASGI app directly, one request at a time, in one event loop:

- ``unchanged``: devices registered first, then re-reporting their place (0 upstream calls);
- ``changed``: devices moving between known places (1 upstream call each, through the
  in-process transport: the gateway's client, codec and pipeline, without the socket I/O);
- ``query``: devices registered first, then the carrier's call-time query
  (``GET /v1/emergency-calls/location``) for their numbers, ``--gap-ms`` apart (2 ms: the
  load phase's 500/s), so that the query's history is written in batches as under that load;
- ``baseline``: the bare Starlette app of ``bench.baseline``.

Requests go one at a time unless ``--concurrency N``: with a state store that batches
concurrent writes (group commit), one at a time is its worst case. ``--tasks`` runs each
request in a task of its own, as a server does.

It prints CPU microseconds per request. Being one process with no I/O, its numbers barely
move when the machine is busy, which makes it the tool for before/after comparisons of the
app's own code. ``--profile FILE`` attaches py-spy to the measured loop (after the warm-up;
collapsed stacks in FILE) and prints where the time goes: with no syscalls in the loop, each
function's share is its share of CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import IO, Any

import httpx
from starlette.datastructures import Secret
from starlette.types import ASGIApp, Message

from bench import profile as profiling
from bench.query import LOOPBACK, Receiver
from bench.workload import AddressBook, Device, ObservedClock

ADMIN_KEY = "bench-inproc-admin-key-0123456789"
QUERY_TOKEN = "bench-inproc-query-token-0123456789"  # noqa: S105 - a bench credential
QUERY_PATH = "/v1/emergency-calls/location"


def _scope(body: bytes, query: str | None = None, admin_key: str = ADMIN_KEY) -> dict[str, Any]:
    """A ``POST /v1/location-reports`` of ``body``, or with ``query`` the call-time query."""
    path = "/v1/location-reports" if query is None else QUERY_PATH
    headers = [(b"host", b"gateway")]
    if query is None:
        headers += [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {admin_key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST" if query is None else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": (query or "").encode(),
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def call(
    app: ASGIApp, body: bytes, query: str | None = None, *, admin_key: str = ADMIN_KEY
) -> int:
    """One ``POST /v1/location-reports`` (or, with ``query``, one call-time query) straight
    to the ASGI app, as a server would make it, with a client that stays connected; the
    answer's status."""
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a client that stays: no disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(body, query, admin_key), receive, send)
    return status


async def run(
    path: str,
    requests: int,
    devices: int,
    addresses: int,
    devnull: IO[str],
    profile: Path | None = None,
    concurrency: int = 1,
    store_url: str | None = None,
    gap: float = 0.002,
    subscribe: bool = False,
    tasks: bool = False,
) -> dict[str, float]:
    from gateway.app import SANDBOX_PREFIX, create_app
    from gateway.settings import Settings
    from gateway.simulator import SimulatorConfig, create_simulator

    configure_logging: Any = None
    with contextlib.suppress(ImportError):  # an older gateway: no logging set-up to copy
        from gateway.observability import configure_logging

    book = AddressBook()
    places = book.fresh(addresses)
    fleet = [Device.numbered(f"bench-inproc-{i:07d}", i) for i in range(devices)]
    clock = ObservedClock()
    if path == "baseline":
        from bench.baseline import app as baseline_app

        app: ASGIApp = baseline_app
        context = None
    else:
        settings = Settings(
            admin_keys=(Secret(ADMIN_KEY),), device_jwt_secret=Secret("x" * 32)
        ).for_sandbox(f"http://sim{SANDBOX_PREFIX}/api")
        settings = replace(settings, log_level="INFO", emergency_query_token=Secret(QUERY_TOKEN))
        if store_url is not None:
            settings = replace(settings, database_url=store_url)
        if subscribe:
            # Deliveries in this process too: what is measured here is one process's CPU.
            settings = replace(settings, webhook_allowed_hosts=(LOOPBACK,), event_delivery="inline")
        # As in the load runs: the per-device report limit out of reach, its cost still paid.
        limits: dict[str, Any] = {"report_rate_per_minute": 6e7, "report_burst": 1_000_000}
        names = {f.name for f in fields(settings)}
        settings = replace(settings, **{k: v for k, v in limits.items() if k in names})
        sim = create_simulator(
            SimulatorConfig(
                account_id=settings.bandwidth_account_id,
                username=settings.bandwidth_username,
                password=str(settings.bandwidth_password),
            )
        )
        if configure_logging is not None:
            configure_logging(settings.log_level, devnull)
        gateway = create_app(settings, sandbox_app=sim)
        app = gateway
        context = gateway.router.lifespan_context(gateway)
    where = [i % addresses for i in range(devices)]

    async def drive() -> dict[str, float]:
        if path != "baseline":
            for i, device in enumerate(fleet):  # register every device once
                status = await call(app, device.body(places[where[i]], clock.next()))
                assert status == 200, f"warm-up report answered {status}"
        if path == "query":
            numbers = [f"from={d.telephone_number}&to=911&token={QUERY_TOKEN}" for d in fleet]
            calls = [(b"", numbers[(i * 7919) % devices]) for i in range(requests)]
            pause = gap
        else:
            calls = []
            for i in range(requests):
                d = i % devices
                if path == "changed":
                    where[d] = (where[d] + 1) % addresses
                calls.append((fleet[d].body(places[where[d]], clock.next()), None))
            pause = 0.0
        receiver = await _subscribe(app) if subscribe else None
        for body, query in calls[:200]:  # the measured path's first calls (imports, caches)
            await call(app, body, query)
        if receiver is not None:
            await _delivered(receiver, 200)
        spy = profiling.start(os.getpid(), profile, None) if profile is not None else None
        queue = iter(calls)
        bad = 0

        async def worker() -> None:
            nonlocal bad
            for body, query in queue:
                if tasks:  # as a server runs each request: in a task of its own
                    status = await asyncio.create_task(call(app, body, query))
                else:
                    status = await call(app, body, query)
                if status != 200:
                    bad += 1
                if pause:
                    await asyncio.sleep(pause)

        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - wall0
            if receiver is not None:  # the events' deliveries are part of the calls' cost
                await _delivered(receiver, 200 + requests)
            cpu = time.process_time() - cpu0
        finally:
            if receiver is not None:
                receiver.close()
                await receiver.process.wait()
            if spy is not None:
                summary = profiling.finish(spy, stop=True)
                if summary is not None:
                    print(profiling.render({f"in-process {path}": summary}))
        return {
            "requests": float(requests),
            "non_200": float(bad),
            "cpu_us_per_request": cpu / requests * 1e6,
            # The pauses are not the request's time.
            "wall_us_per_request": (wall - pause * requests / concurrency) / requests * 1e6,
        }

    if context is None:
        return await drive()
    async with context:
        return await drive()


async def _subscribe(app: ASGIApp) -> Receiver:
    """A receiver process on loopback, subscribed to every call's event."""
    receiver = await Receiver.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "eventTypes": ["emergency_call"]},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    if answer.status_code != 201:
        receiver.close()
        raise RuntimeError(f"subscription refused: {answer.status_code} {answer.text}")
    return receiver


async def _delivered(receiver: Receiver, count: int, within: float = 60.0) -> None:
    """Wait until ``receiver`` has had ``count`` deliveries."""
    deadline = time.monotonic() + within
    while await receiver.received() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} deliveries within {within:g} s")
        await asyncio.sleep(0.05)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.inproc", description=__doc__)
    parser.add_argument(
        "--path", choices=("unchanged", "changed", "query", "baseline"), default="unchanged"
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=2.0,
        help="with --path query: the pause after each query (2 ms: 500 queries/s)",
    )
    parser.add_argument(
        "--subscribe",
        action="store_true",
        help="with --path query: a webhook subscription to every call's event, delivered to "
        "a receiver process on loopback (its deliveries counted in the CPU per query)",
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight at once (the state store batches concurrent writes)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run under py-spy, write collapsed stacks to FILE, print a summary",
    )
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="each request in a task of its own, as a server runs them (what a request's "
        "task and context cost, and any garbage they leave, is then measured too)",
    )
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="the state store (GATEWAY_DATABASE_URL): 'none' for none; default the sandbox's",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.requests <= 10_000_000 or args.devices < 1 or args.addresses < 2:
        raise SystemExit("need 0 < --requests <= 1e7, --devices >= 1, --addresses >= 2")
    with open(os.devnull, "w") as devnull:
        result = asyncio.run(
            run(
                args.path,
                args.requests,
                args.devices,
                args.addresses,
                devnull,
                args.profile,
                max(1, args.concurrency),
                args.store_url,
                args.gap_ms / 1000,
                args.subscribe,
                args.tasks,
            )
        )
    print(
        f"{args.path}: {int(result['requests'])} requests, "
        f"{result['cpu_us_per_request']:.1f} us CPU and {result['wall_us_per_request']:.1f} us "
        f"wall per request ({int(result['non_200'])} not 200)"
    )
    return 0 if not result["non_200"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
