"""A bounded soak (issue 7, item 4): many reports, small caches, and nothing that keeps growing.

The workload: devices that keep appearing all run long (one new device every
``reports / devices`` reports), each re-reporting where it is (unchanged), moving among
``PLACES`` common places, or now and then reporting a place never seen before; half the
picks favour recently seen devices (binding-cache hits), half are any device (misses). The
caches are set far below the working set (bindings, locations, normalized and geocoded
addresses), so their bounds are exercised all the time; the carrier fails a low share of
calls with every fault the simulator has (timeouts that land late included). Each device's
reports go one at a time, each newer than the last.

``test_soak_against_real_processes`` (``slow``; two and a half minutes on a shared 2-CPU
machine, figures in docs/reliability.md): a real ``dlr-gateway serve`` in front of a real
``dlr-gateway simulator``, both on 127.0.0.1, driven with httpx at bounded concurrency.
Every ``SAMPLE_EVERY`` reports it samples the gateway's RSS (``/proc/PID/status``) and its
TCP sockets (``/proc/PID/fd`` inodes looked up in ``/proc/net/tcp*``). It asserts:

- ``REPORTS`` reports (or as many as ``LOAD_TIME_LIMIT`` allows, at least ``MIN_REPORTS``)
  are each answered 200, or 503/504 with ``Retry-After`` (a faulted carrier);
- the RSS plateaus: over the second half it grows by less than ``RSS_GROWTH_MIB``;
- connections stay bounded: to the carrier at most ``GATEWAY_UPSTREAM_MAX_CONNECTIONS``,
  from clients at most the load's concurrency, and none from clients once they have gone;
  open file descriptors stay within the baseline plus those two;
- every device's record at the carrier (``/_sim/state``) is its newest acknowledged
  report, or a later one it sent (faults), once the late writes have landed and been repaired;
- ``dlr_reports_total`` counts every report, and the log holds no ERROR.

``test_soak_in_process`` (CI, under ten seconds): the same workload, smaller, through
``tests/harness.py`` with the default store (SQLite in a file), where the gateway's insides
can be seen: after ``pipeline.idle()`` the number of asyncio tasks is back to its baseline,
every container on the pipeline, client and geocoder that is not a size-bounded cache is
empty, the caches are bounded by the configured sizes, and no module-level ``functools``
cache is unbounded.
RSS is not asserted there: the simulator shares the process and keeps every call it saw.

Every loop is bounded in count and in time; all traffic is on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import zipcodes
from cachetools import Cache

from gateway.dlr.address import NormalizeCache, normalize
from gateway.dlr.ids import endpoint_id_for, location_id_for
from gateway.dlr.pipeline import Pipeline
from gateway.events.process import DeliveryProcess
from gateway.lru import Lru
from gateway.simulator.addresses import US_STATES
from gateway.store.kept import KeptConnections
from gateway.store.sql import KEPT_CONNECTIONS
from tests import procs
from tests.harness import gateway, gateway_settings, phone_of

#: Common places devices move among.
PLACES = 50
CALLER = "SOAK DEVICE"
_STREETS = ("MAIN ST", "OAK AVE", "MAPLE DR", "PARK RD", "LAKE ST", "PINE LN", "ELM ST")
#: The 50 states and DC (no territories).
_STATES = US_STATES - {"PR", "VI", "GU", "AS", "MP"}

# -- the slow soak's scale and bounds --------------------------------------------------------

REPORTS = 20_000
DEVICES = 2_000
CONCURRENCY = 32
SAMPLE_EVERY = 1_000
#: The load stops after ``REPORTS`` reports or this many seconds, whichever comes first (the
#: 20 000 take 140 to 210 s on a shared 2-CPU machine, about 70 s of it the gateway's CPU)...
LOAD_TIME_LIMIT = 150.0
#: ...and the verdict needs at least this many, so that the second half has 5 000.
MIN_REPORTS = 10_000
UPSTREAM_POOL = 16
FAULT_RATE = 0.01
TIMEOUT_HOLD = 2.0
#: After the last held write lands: one re-read and one write per device (tests/test_faults.py).
REPAIR_BOUND = 3.0
#: Bounds on starting each process (until it answers) and on stopping it (then SIGKILL).
START_TIMEOUT = 60.0
STOP_GRACE = 15.0
#: Allowed RSS growth over the second half of the run. Once the caches are full (within the
#: first few hundred reports) the gateway holds a constant amount of state; what is left is
#: the allocator settling (pymalloc arenas, glibc heap fragmentation, SQLite's page cache),
#: under a MiB measured on a ~260 MiB process. A leak of 1 KiB per report would add 10 MiB
#: over a full run's second half (10 000 reports; 2 KiB at the shortest run accepted), so
#: that is the bound. It is in MiB, not a share of the RSS, because most of the RSS is the
#: ZIP data loaded at start, which says nothing about a leak.
RSS_GROWTH_MIB = 10.0

# -- settings shared by both runs ------------------------------------------------------------

#: The caches: all far below the soak's working set (devices, places, fresh addresses).
SMALL_CACHES = {
    "GATEWAY_BINDING_CACHE_SIZE": "500",
    "GATEWAY_LOCATION_CACHE_SIZE": "200",
    "GATEWAY_NORMALIZE_CACHE_SIZE": "500",
    "GEOCODE_CACHE_SIZE": "500",
}
#: Timeouts short enough that a held ("timeout") call is abandoned and watched, long enough
#: that a loaded machine does not time out healthy calls.
UPSTREAM = {
    "GATEWAY_UPSTREAM_TIMEOUT": "1.0",
    "GATEWAY_UPSTREAM_DEADLINE": "2.5",
    "GATEWAY_REPORT_DEADLINE": "3.0",
    "GATEWAY_UPSTREAM_SETTLE_TIMEOUT": "30",
    "GATEWAY_UPSTREAM_MAX_CONNECTIONS": str(UPSTREAM_POOL),
}


# -- the workload -----------------------------------------------------------------------------


def _store_operation(task: asyncio.Task[Any]) -> bool:
    """A task of a SQLite unit of work's (``gateway.store.shielded``): one of its
    operations, or its end; or the opening or closing of a connection the store keeps
    (``KeptConnections._connect_kept``): each short-lived."""
    name = getattr(task.get_coro(), "__qualname__", "")
    kept = f"{KeptConnections.__name__}."
    return name.startswith(("ShieldedConnection.", "AsyncConnection.", "shielded_unit.", kept))


@functools.cache
def places() -> tuple[str, ...]:
    """``PLACES`` real addresses (a real ZIP with its city and state), as free-form lines."""
    rows = sorted(
        (z["zip_code"], z["city"], z["state"])
        for z in zipcodes.list_all()  # type: ignore[no-untyped-call]
        if z["zip_code_type"] == "STANDARD" and z["active"] and z["state"] in _STATES
    )
    chosen = random.Random(911).sample(rows, 4 * PLACES)
    return tuple(
        f"{100 + i} {_STREETS[i % len(_STREETS)]}, {city}, {state} {zip_code}"
        for i, (zip_code, city, state) in enumerate(chosen)
    )


def fresh_place(n: int) -> str:
    """The ``n``-th address never reported before: a new house number at a known ZIP."""
    base = places()[PLACES + n % (3 * PLACES)]
    _, _, rest = base.partition(" ")
    return f"{1000 + n} {rest}"


@functools.cache
def expected_location_id(address: str) -> str:
    """The location ID the gateway derives for ``address`` (its own normalizer and IDs)."""
    normalized = normalize(address)
    assert normalized.valid and normalized.address is not None, (address, normalized.errors)
    return location_id_for(normalized.address)


@dataclass(frozen=True, slots=True)
class Step:
    device: int
    kind: str  # "first", "unchanged", "move", "fresh"
    pick: int


def schedule(reports: int, devices: int, seed: int) -> Iterator[Step]:
    """``reports`` steps; device ``k`` appears first at about step ``k * reports / devices``."""
    rng = random.Random(seed)
    introduced = 0
    for i in range(reports):
        pick = rng.randrange(1 << 30)
        if introduced < min(devices, -(-(i + 1) * devices // reports)):
            introduced += 1
            yield Step(introduced - 1, "first", pick)
            continue
        if rng.random() < 0.5:
            device = rng.randrange(max(0, introduced - 200), introduced)  # recently seen
        else:
            device = rng.randrange(introduced)
        roll = rng.random()
        kind = "fresh" if roll < 0.05 else "move" if roll < 0.40 else "unchanged"
        yield Step(device, kind, pick)


def aeui(device: int) -> str:
    return f"soak-{device}"


@dataclass
class Sent:
    address: str
    status: int
    location_id: str | None


@dataclass
class Device:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent: list[Sent] = field(default_factory=list)
    address: str | None = None


@dataclass
class Load:
    """What the load sent and got back."""

    devices: dict[int, Device] = field(default_factory=lambda: defaultdict(Device))
    statuses: Counter[int] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    completed: int = 0
    fresh: int = 0
    seconds: float = 0.0
    #: What the carrier saw (the real-process soak only).
    faults: Counter[str] = field(default_factory=Counter)
    upstream_calls: int = 0

    def next_address(self, device: Device, step: Step) -> str:
        common = places()[:PLACES]
        if device.address is None or step.kind == "move":
            choice = common[step.pick % PLACES]
            if choice == device.address:
                choice = common[(step.pick + 1) % PLACES]
            return choice
        if step.kind == "fresh":
            self.fresh += 1
            return fresh_place(self.fresh)
        return device.address


async def drive(
    http: httpx.AsyncClient,
    steps: Iterator[Step],
    *,
    concurrency: int,
    time_limit: float,
    every: int,
    sample: Callable[[int], None],
    base: datetime,
    faults: bool,
) -> Load:
    """Send the steps' reports, ``concurrency`` at a time; ``sample(done)`` every ``every``."""
    load = Load()
    started = time.monotonic()
    sample(0)

    async def worker() -> None:
        for step in steps:  # shared: each step is taken by one worker
            if time.monotonic() - started > time_limit or len(load.unexpected) > 20:
                return
            device = load.devices[step.device]
            async with device.lock:  # one report per device at a time, in order
                address = load.next_address(device, step)
                body = {
                    "alternateEndUserId": aeui(step.device),
                    "callerName": CALLER,
                    "telephoneNumber": phone_of(aeui(step.device)),
                    "observedAt": (base + timedelta(seconds=len(device.sent))).isoformat(),
                    "address": address,
                }
                try:
                    response = await http.post("/v1/location-reports", json=body)
                except httpx.HTTPError as exc:
                    load.unexpected.append(f"{aeui(step.device)}: {type(exc).__name__} {exc}")
                    continue
                device.address = address
                check(load, device, address, response, faults)
            load.completed += 1
            if load.completed % every == 0:
                sample(load.completed)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.seconds = time.monotonic() - started
    if load.completed % every:
        sample(load.completed)
    return load


def check(load: Load, device: Device, address: str, response: httpx.Response, faults: bool) -> None:
    status = response.status_code
    load.statuses[status] += 1
    location_id = None
    if status == 200:
        answer = response.json()
        location_id = answer["locationId"]
        load.changes[answer["changes"]["endpoint"]] += 1
    elif status in (503, 504) and faults:
        retry_after = response.headers.get("retry-after", "")
        kind = response.headers.get("content-type", "")
        if not (retry_after.isdigit() and int(retry_after) >= 1) or "problem+json" not in kind:
            load.unexpected.append(f"{status} without Retry-After: {response.text[:300]}")
    else:
        load.unexpected.append(f"{status}: {response.text[:300]}")
    device.sent.append(Sent(address, status, location_id))


def stale_devices(load: Load, endpoints: dict[str, dict[str, Any]]) -> list[str]:
    """Devices whose record at the carrier is not their newest acknowledged report, nor a
    later one they sent (a report answered 503/504 may still have been applied)."""
    stale = []
    for index, device in load.devices.items():
        acknowledged = [i for i, s in enumerate(device.sent) if s.status == 200]
        if not acknowledged:
            continue
        allowed = {expected_location_id(s.address) for s in device.sent[acknowledged[-1] :]}
        held = endpoints.get(endpoint_id_for(aeui(index)), {})
        if held.get("locationId") not in allowed or held.get("callerName") != CALLER:
            stale.append(f"{aeui(index)}: holds {held.get('locationId')}, allowed {allowed}")
    return stale


def answered_ids_are_derived(load: Load) -> list[str]:
    """Every acknowledged report named the location ID its address derives."""
    return [
        f"{s.address}: {s.location_id}"
        for device in load.devices.values()
        for s in device.sent
        if s.status == 200 and s.location_id != expected_location_id(s.address)
    ]


async def until(predicate: Callable[[], Awaitable[bool] | bool], within: float) -> bool:
    """Poll ``predicate`` every 0.25 s until it holds (``True``) or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        found = predicate()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)


# -- /proc: a process's memory, descriptors and TCP sockets ------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (all resident memory) or ``RssAnon`` (heap, not mapped files) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


@dataclass(frozen=True)
class Sockets:
    fds: int
    listening: int
    inbound: int  # connections to the gateway's port, in any state
    inbound_open: int  # of which ESTABLISHED (not closing)
    upstream: int  # connections to the carrier's port
    other_tcp: int
    states: tuple[tuple[str, int], ...]


_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def sockets_of(pid: int, port: int, upstream_port: int) -> Sockets:
    inodes: set[int] = set()
    fds = 0
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed between the listing and the link
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                fds += 1
                found = re.fullmatch(r"socket:\[(\d+)\]", target)
                if found:
                    inodes.add(int(found.group(1)))
    listening = inbound = inbound_open = upstream = other = 0
    states: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[9]) not in inodes:
                    continue
                local = int(parts[1].rsplit(":", 1)[1], 16)
                remote = int(parts[2].rsplit(":", 1)[1], 16)
                state = _TCP_STATES.get(parts[3], parts[3])
                if state == "LISTEN":
                    listening += 1
                    continue
                states[state] += 1
                if local == port:
                    inbound += 1
                    inbound_open += state == "ESTABLISHED"
                elif remote == upstream_port:
                    upstream += 1
                else:
                    other += 1
    return Sockets(
        fds, listening, inbound, inbound_open, upstream, other, tuple(sorted(states.items()))
    )


@dataclass
class Sample:
    reports: int
    rss_mib: float
    anon_mib: float
    sockets: Sockets


@pytest.mark.slow
def test_soak_against_real_processes(tmp_path: Path) -> None:
    sim = procs.simulator(
        tmp_path,
        "--fault-rate",
        str(FAULT_RATE),
        "--timeout-hold",
        str(TIMEOUT_HOLD),
        "--seed",
        "20261127",
    )
    # "": no GATEWAY_DATABASE_URL, so the default store (SQLite in a file under tmp_path).
    gateway_env = procs.gateway_environ(
        sim.port, "", GATEWAY_SHUTDOWN_GRACE="5", **SMALL_CACHES, **UPSTREAM
    )
    served = procs.replica("gateway", tmp_path, gateway_env)
    sim_port, port = sim.port, served.port
    sim_base, base = sim.base, served.base
    try:
        sim.start().wait_ready(START_TIMEOUT)
        served.start().wait_ready(START_TIMEOUT)
        assert served.child is not None and sim.child is not None
        pid = served.child.pid
        samples: list[Sample] = []

        def sample(done: int) -> None:
            memory = rss_mib(pid), rss_mib(pid, "RssAnon")
            samples.append(Sample(done, *memory, sockets_of(pid, port, sim_port)))

        async def run() -> tuple[Load, dict[str, Any], str, Sockets]:
            # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout: at
            # httpx's default (also 5 s) a request sent as the server closes is reset.
            limits = httpx.Limits(
                max_connections=CONCURRENCY,
                max_keepalive_connections=CONCURRENCY,
                keepalive_expiry=2.0,
            )
            async with httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {procs.ADMIN_KEY}"},
                limits=limits,
                timeout=30,
                trust_env=False,
            ) as http:
                load = await drive(
                    http,
                    schedule(REPORTS, DEVICES, seed=7),
                    concurrency=CONCURRENCY,
                    time_limit=LOAD_TIME_LIMIT,
                    every=SAMPLE_EVERY,
                    sample=sample,
                    base=datetime.now(UTC) - timedelta(hours=6),
                    faults=True,
                )
            async with httpx.AsyncClient(base_url=sim_base, timeout=30, trust_env=False) as sim:
                state: dict[str, Any] = {}

                async def settled() -> bool:
                    nonlocal state
                    state = (await sim.get("/_sim/state")).json()
                    return not stale_devices(load, state["endpoints"])

                # Held writes land within TIMEOUT_HOLD; then each repair is a read and a write.
                await until(settled, TIMEOUT_HOLD + REPAIR_BOUND + 5)
                calls = (await sim.get("/_sim/calls")).json()
                load.faults = Counter(c["fault"] for c in calls if c["fault"])
                load.upstream_calls = len(calls)
            async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as http:
                metrics = (await http.get("/metrics")).text
            # Every client has gone: no connection from one may stay open at the gateway.
            await until(lambda: sockets_of(pid, port, sim_port).inbound == 0, 10)
            return load, state, metrics, sockets_of(pid, port, sim_port)

        load, state, metrics, final = asyncio.run(run())
        final_rss = rss_mib(pid)
        cpu = {"gateway": cpu_seconds(pid), "simulator": cpu_seconds(sim.child.pid)}
    finally:
        # The gateway first (its shutdown may still talk to the carrier), then the simulator.
        procs.stop_all([served], grace=STOP_GRACE)
        procs.stop_all([sim], grace=STOP_GRACE)

    # Every report answered as it should be.
    assert not load.unexpected, load.unexpected[:20]
    assert load.completed >= MIN_REPORTS, f"{load.completed} reports in {load.seconds:.0f}s"
    assert set(load.statuses) <= {200, 503, 504}, load.statuses
    # The carrier did fail: about FAULT_RATE of its calls (half of that is 4 sigma away).
    assert sum(load.faults.values()) >= FAULT_RATE * load.upstream_calls / 2, load.faults
    assert load.statuses[200] >= 0.95 * load.completed, load.statuses
    # Every device ends as its newest acknowledged report, or a later one.
    assert len(load.devices) >= DEVICES * load.completed // REPORTS
    stale = stale_devices(load, state["endpoints"])
    assert not stale, stale[:20]
    assert not answered_ids_are_derived(load)
    # The gateway counted every report.
    counted = procs.metric_samples(metrics, "dlr_reports_total")
    assert sum(counted.values()) == load.completed, counted
    repairs = procs.metric_samples(metrics, "dlr_reconcile_repairs_total")
    errors = [line for line in served.log.read_text().splitlines() if '"level": "ERROR"' in line]
    assert not errors, errors[:5]

    # Memory plateaus.
    middle = next(s for s in samples if s.reports >= load.completed // 2)
    second_half = [s.rss_mib for s in samples if s.reports >= middle.reports]
    growth = max(second_half) - middle.rss_mib
    # Connections and descriptors stay bounded.
    peak_upstream = max(s.sockets.upstream for s in samples)
    # Open ones: a connection the readiness poll has just closed may still be closing.
    peak_inbound = max(s.sockets.inbound_open for s in samples)
    start = samples[0].sockets

    figures = {
        "reports": load.completed,
        "devices": len(load.devices),
        "fresh_addresses": load.fresh,
        "seconds": round(load.seconds, 1),
        "reports_per_second": round(load.completed / load.seconds, 1),
        "statuses": dict(load.statuses),
        "endpoint_changes": dict(load.changes),
        "upstream_calls": load.upstream_calls,
        "faults": dict(load.faults),
        "repairs": repairs,
        "cpu_seconds": cpu,
        "gateway_cpu_ms_per_report": round(1000 * cpu["gateway"] / load.completed, 2),
        "rss_mib": [(s.reports, round(s.rss_mib, 1), round(s.anon_mib, 1)) for s in samples],
        "rss_after_settling_mib": round(final_rss, 1),
        "rss_growth_second_half_mib": round(growth, 1),
        "peak_upstream_connections": peak_upstream,
        "peak_inbound_connections": peak_inbound,
        "fds": {"start": start.fds, "middle": middle.sockets.fds, "end": final.fds},
        "final_sockets": dataclasses.asdict(final),
    }
    print("\nsoak figures:", json.dumps(figures, indent=1))
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=1))

    assert growth < RSS_GROWTH_MIB, figures
    assert peak_upstream <= UPSTREAM_POOL, figures
    assert final.upstream <= UPSTREAM_POOL, figures
    assert peak_inbound <= CONCURRENCY, figures
    assert final.inbound == 0, figures
    assert final.fds <= start.fds + UPSTREAM_POOL + CONCURRENCY, figures


# -- in process: the gateway's insides --------------------------------------------------------

SHORT_REPORTS = 1_000
SHORT_DEVICES = 100
SHORT_CACHE = 50
SHORT_LOCATIONS = 20
SHORT_HOLD = 1.0


def unbounded_containers(owner: object) -> dict[str, int]:
    """The sizes of ``owner``'s containers that no size bound keeps small (not a cache, nor
    a structure with a ``maxsize`` of its own, checked by the caller)."""
    sizes = {}
    for name, value in vars(owner).items():
        if isinstance(value, Cache | str | bytes | tuple) or hasattr(value, "maxsize"):
            continue
        with contextlib.suppress(TypeError):
            sizes[name] = len(value)
    return sizes


def caches(owner: object) -> dict[str, Cache[Any, Any] | Lru[Any, Any]]:
    return {name: value for name, value in vars(owner).items() if isinstance(value, Cache | Lru)}


def unbounded_memos() -> list[str]:
    """``functools`` caches without a ``maxsize`` in the gateway's loaded modules, except
    those of functions without arguments (one entry at most)."""
    found = []
    for module in [m for n, m in list(sys.modules.items()) if n.startswith("gateway.")]:
        for name, value in vars(module).items():
            if not hasattr(value, "cache_parameters") or value.__module__ != module.__name__:
                continue
            if value.cache_parameters()["maxsize"] is None and inspect.signature(value).parameters:
                found.append(f"{module.__name__}.{name}")
    return found


def in_process_soak(database_url: str, *, fault_rate: float = 0.02, seed: int = 11) -> None:
    """The soak, smaller, in this process: see the module docstring."""
    settings = gateway_settings(
        database_url=database_url,
        binding_cache_size=SHORT_CACHE,
        location_cache_size=SHORT_LOCATIONS,
        normalize_cache_size=SHORT_CACHE,
        geocode_cache_size=SHORT_CACHE,
        upstream_timeout=0.25,
        upstream_deadline=0.8,
        upstream_max_attempts=3,
        upstream_backoff_base=0.02,
        upstream_backoff_max=0.1,
        report_deadline=1.0,
        upstream_settle_timeout=30.0,
        upstream_max_connections=8,
        breaker_failures=50,
    )

    async def scenario() -> None:
        async with gateway(
            settings, fault_rate=fault_rate, timeout_hold=SHORT_HOLD, seed=seed
        ) as gw:
            services = gw.app.state.services
            pipeline: Pipeline = services.pipeline
            # Nothing to deliver (no subscription, no email): no delivery process is started.
            deliverer = gw.app.state.events.worker
            assert isinstance(deliverer, DeliveryProcess)
            await asyncio.sleep(0)
            # The gateway's lasting tasks: not a statement of a SQLite unit of work in flight
            # now (the delivery worker's first poll, say), which runs in a task of its own.
            baseline = len([t for t in asyncio.all_tasks() if not _store_operation(t)])
            load = await drive(
                gw.http,
                schedule(SHORT_REPORTS, SHORT_DEVICES, seed=seed),
                concurrency=CONCURRENCY,
                time_limit=60.0,
                every=SAMPLE_EVERY,
                sample=lambda done: None,
                base=datetime.now(UTC) - timedelta(hours=6),
                faults=fault_rate > 0,
            )
            assert not load.unexpected, load.unexpected[:20]
            assert load.completed == SHORT_REPORTS
            assert load.statuses[200] >= 0.8 * SHORT_REPORTS, load.statuses
            addresses = {s.address for d in load.devices.values() for s in d.sent}
            assert len(addresses) > SHORT_CACHE, len(addresses)  # every cache overflows
            assert load.changes["unchanged"] > 0 and load.changes["updated"] > 0, load.changes

            # Held writes land, abandoned ones settle, repairs run: then nothing is left over.
            await asyncio.wait_for(gw.simulator.wait_idle(), SHORT_HOLD + 5)
            await asyncio.wait_for(pipeline.idle(), REPAIR_BOUND + 5)
            # A task that has just woken its last waiter (a store's group commit) may still be
            # finishing: give it a moment; a leaked task stays.
            await until(lambda: len(asyncio.all_tasks()) <= baseline, 2.0)
            assert len(asyncio.all_tasks()) == baseline, asyncio.all_tasks()
            assert services.upstream.abandoned == 0
            assert deliverer.pid is None and deliverer.starts == 0
            owners = [pipeline, services.upstream, services.geocoding, services.report_limiter]
            owners += [o for o in (getattr(pipeline, "ledger", None),) if o is not None]
            for owner in owners:
                leftovers = {k: n for k, n in unbounded_containers(owner).items() if n}
                # The connections the store keeps for batched advances: one per batch in
                # flight at most, idle ones kept for the next batches.
                kept = leftovers.pop("_kept_connections", 0)
                assert kept <= KEPT_CONNECTIONS, (type(owner).__name__, kept)
                assert not leftovers, (type(owner).__name__, leftovers)
            callers = pipeline.callers
            assert callers is not None and len(callers) <= callers.maxsize <= SHORT_CACHE
            # The caches are bounded by the settings (1024: the foreign-ID map's floor), not
            # by the 100 000 and 200 000 defaults.
            for owner in (pipeline, services.geocoding, getattr(pipeline, "ledger", None)):
                for name, cache in caches(owner).items() if owner is not None else ():
                    assert cache.maxsize <= 1024, (type(owner).__name__, name, cache.maxsize)
            assert caches(services.geocoding), "the geocoder's caches moved: update this test"
            for name, cache in caches(services.geocoding).items():
                assert cache.maxsize == SHORT_CACHE, (name, cache.maxsize)
            normalizer = services.normalize.__self__
            assert isinstance(normalizer, NormalizeCache)
            assert len(normalizer) <= SHORT_CACHE
            assert not unbounded_memos()

            stale = stale_devices(load, gw.simulator.state["endpoints"])
            assert not stale, stale[:20]
            assert not answered_ids_are_derived(load)

    asyncio.run(scenario())


def test_soak_in_process(tmp_path: Path) -> None:
    """With the state store a gateway uses by default: SQLite in a file."""
    in_process_soak(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
