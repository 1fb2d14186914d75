"""``python -m bench``: start the stack on loopback, run the phases, print and write figures.

Phases, in order (each bounded in requests and time):

1. ``upstream_calls_per_report``: a few devices, one report at a time, each kind of report in
   turn (new device at a new place, unchanged, move to a known place, move to a new place);
   the simulator's call log is read after each kind.
2. geocoder burst: fresh addresses, each reported by several new devices at once; with phase 1
   this gives ``geocoder_calls_per_distinct_address`` from the gateway's ``/metrics``.
3. warm-up: the load devices are registered once (each bound to one of a few addresses).
4. throughput: the baseline, then the gateway with unchanged reports (same generator, same
   connections, same duration): ``baseline_rps``, ``unchanged_rps``.
5. changed latency: open-loop moves between known places at a fixed rate; each report's
   upstream time is the simulator's handling time of its one call (``bench.simserver``).
6. changed throughput: closed-loop moves (``changed_rps``, not a target; it is what the
   profile of the changed path runs under).
7. memory: many new devices, then the gateway's ``VmHWM``: ``peak_rss_mb``.
8. the emergency-call location query (``bench.query``).
9. the wiremap lookup, in process (``bench.network``).
10. faults: moves through a carrier that answers in 200 ms and times out 30 % of calls, against
   the same load without faults (``bench.faults``): ``faults_success_share`` and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import faults, network, query
from bench import profile as profiling
from bench import store as stores
from bench.http import Answer, Pool
from bench.loadgen import (
    LoadResult,
    Timed,
    closed_loop,
    open_loop,
    percentile,
    report_request,
    run_wrk,
    send_all,
    wrk_path,
    wrk_version,
)
from bench.procs import (
    LOOPBACK,
    Service,
    ServiceError,
    Services,
    cpu_seconds,
    free_port,
    pinned_cpus,
    status_kb,
    terminate_as_interrupt,
)
from bench.workload import AddressBook, Device, DeviceNames, ObservedClock, ReportStream
from gateway.api.auth import DeviceTokens
from gateway.dlr.ids import endpoint_id_for
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME

REPO = Path(__file__).resolve().parent.parent
#: Microseconds of ``observedAt`` kept for one wrk run (far more than it can send).
WRK_SPAN_US = 100_000_000


@dataclass
class Plan:
    """Every knob of a run; ``--quick``, the full run and ``--smoke`` differ only here."""

    mode: str
    #: The carrier API the gateway and the simulator speak (``--api``): ``seed`` or ``v2``.
    api: str = "seed"
    #: With ``--api v2``: seconds the simulator keeps an endpoint order in progress.
    order_seconds: float = 0.05
    server: str = "uvicorn"
    loadgen: str = "auto"
    auth: str = "admin"
    address_form: str = "string"
    latency_ms: float = 20.0
    connections: int = 50
    wrk_threads: int = 1
    duration_s: float = 30.0
    warmup_s: float = 5.0
    devices: int = 1000
    addresses: int = 50
    changed_rate: float = 50.0
    changed_s: float = 30.0
    changed_devices: int = 500
    per_kind: int = 50
    burst_addresses: int = 20
    burst_devices: int = 10
    rss_devices: int = 100_000
    rss_addresses: int = 10_000
    register_concurrency: int = 64
    #: Seconds to wait after each kind of report before reading the call log, so that calls
    #: a report sets off later (repairs, the reconciler's next tick) are counted too.
    settle_s: float = 1.5
    phase_timeout_s: float = 900.0
    profile_dir: Path | None = None
    log_dir: Path | None = None
    #: Extra environment for the gateway (``--gateway-env NAME=VALUE``), e.g. to try a setting.
    gateway_env: dict[str, str] = field(default_factory=dict)
    #: The state store (``bench.store``): sqlite (default), postgres or none.
    store: str = "sqlite"
    store_url: str | None = None
    store_naive: bool = False
    #: Only the throughput figures (warm-up, baseline and unchanged runs): ``--only-throughput``.
    only_throughput: bool = False
    #: Only ``peak_rss_mb`` (the memory phase): ``--only-memory``.
    only_memory: bool = False
    #: Only the carrier-faults phase (``bench.faults``): ``--only-faults``.
    only_faults: bool = False
    #: Only the emergency-query phase (``bench.query``): ``--only-query``.
    only_query: bool = False
    #: ``--pin``: the gateway's CPUs and everyone else's (``bench.procs.pinned_cpus``); the
    #: query phase's webhook receiver then runs in the idle class.
    pinned: tuple[frozenset[int], frozenset[int]] | None = None

    @classmethod
    def for_mode(cls, mode: str) -> Plan:
        if mode == "full":
            return cls(mode)
        if mode == "quick":
            return cls(
                mode,
                duration_s=8.0,
                warmup_s=1.0,
                changed_s=8.0,
                changed_devices=500,
                per_kind=20,
                burst_addresses=10,
                rss_devices=5_000,
                rss_addresses=500,
                phase_timeout_s=120.0,
            )
        if mode == "smoke":
            return cls(
                mode,
                connections=8,
                duration_s=1.0,
                warmup_s=0.0,
                devices=40,
                addresses=8,
                changed_rate=40.0,
                changed_s=1.0,
                changed_devices=40,
                per_kind=4,
                settle_s=0.3,
                burst_addresses=2,
                burst_devices=4,
                rss_devices=100,
                rss_addresses=40,
                register_concurrency=20,
                phase_timeout_s=30.0,
            )
        raise ValueError(mode)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["profile_dir"] = str(self.profile_dir) if self.profile_dir else None
        out["log_dir"] = str(self.log_dir) if self.log_dir else None
        out["pinned"] = [sorted(cpus) for cpus in self.pinned] if self.pinned else None
        # A database URL may hold a password: recorded only as given or not.
        out["store_url"] = "given" if self.store_url else None
        if "GATEWAY_DATABASE_URL" in out["gateway_env"]:
            out["gateway_env"]["GATEWAY_DATABASE_URL"] = "(set)"
        return out


# -- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    simulator: Service
    gateway: Service
    baseline: Service
    admin_key: str
    jwt_secret: str


def _python_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _granian(target: str, port: int, *, factory: bool) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-ws",
        "--no-access-log",  # as gateway.server.build_config: request lines come from the app
        "--log-level",
        "info",
    ]
    if factory:
        argv.append("--factory")
    return [*argv, target]


def start_stack(plan: Plan, services: Services, workdir: Path) -> Stack:
    """Simulator, gateway and baseline, each on a free loopback port, each answering."""
    logs = plan.log_dir or workdir
    logs.mkdir(parents=True, exist_ok=True)
    admin_key = "bench-admin-" + secrets.token_urlsafe(24)
    jwt_secret = secrets.token_urlsafe(32)
    creds = {
        "BANDWIDTH_ACCOUNT_ID": SANDBOX_ACCOUNT_ID,
        "BANDWIDTH_USERNAME": SANDBOX_USERNAME,
        "BANDWIDTH_PASSWORD": SANDBOX_PASSWORD,
    }
    sim_port = free_port()
    simulator = Service(
        "simulator",
        [
            sys.executable,
            "-m",
            "bench.simserver",
            "--host",
            LOOPBACK,
            "--port",
            str(sim_port),
            "--latency-ms",
            str(plan.latency_ms),
            "--api",
            plan.api,
            "--order-seconds",
            str(plan.order_seconds),
        ],
        sim_port,
        logs / "simulator.log",
        env=_python_env(creds),
        cwd=str(workdir),
    )

    gw_port = free_port()
    gw_env = _python_env(
        {
            **creds,
            "BANDWIDTH_BASE_URL": f"http://{LOOPBACK}:{sim_port}/api",
            "BANDWIDTH_API": plan.api,
            "GATEWAY_ADMIN_KEYS": admin_key,
            "GATEWAY_DEVICE_JWT_SECRET": jwt_secret,
            # The per-device report limit (60/min by default) would answer 429 to the load
            # devices, each of which reports several times a second here; set it out of
            # reach rather than off, so that its cost per report is still measured.
            "GATEWAY_REPORT_RATE_PER_MINUTE": "60000000",
            "GATEWAY_REPORT_BURST": "1000000",
            # The emergency-call location query (bench.query) authenticates with a token.
            "GATEWAY_EMERGENCY_QUERY_TOKEN": query.TOKEN,
            # The query phase's webhook receiver is on loopback, refused unless listed.
            "GATEWAY_WEBHOOK_ALLOWED_HOSTS": LOOPBACK,
            **plan.gateway_env,
        }
    )
    if plan.server == "granian":
        gw_argv = _granian("bench.granian_app:gateway_app", gw_port, factory=True)
    else:
        gw_argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(gw_port),
        ]
    split = plan.pinned
    if split is not None:
        # The harness first: the servers it starts after this inherit its CPUs.
        os.sched_setaffinity(0, split[1])
    gateway = Service(
        "gateway",
        gw_argv,
        gw_port,
        logs / "gateway.log",
        env=gw_env,
        cwd=str(workdir),
        cpus=split[0] if split is not None else None,
    )

    base_port = free_port()
    if plan.server == "granian":
        base_argv = _granian("bench.baseline:app", base_port, factory=False)
    else:
        base_argv = [
            sys.executable,
            "-m",
            "bench.baseline",
            "--host",
            LOOPBACK,
            "--port",
            str(base_port),
        ]
    baseline = Service(
        "baseline",
        base_argv,
        base_port,
        logs / "baseline.log",
        env=_python_env({}),
        cwd=str(workdir),
    )
    services.start((simulator, "/_sim/config"), (gateway, "/healthz"), (baseline, "/healthz"))
    return Stack(simulator, gateway, baseline, admin_key, jwt_secret)


# -- the environment -------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> float | None:
    kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kb = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return round(kb / 1024, 0) if kb else None


def _code() -> dict[str, Any]:
    """The commit the gateway was measured at, and whether the work tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            [  # --no-optional-locks: a read that never writes the index
                "git",
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "gateway",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "gateway_modified": None}
    return {"commit": head or None, "gateway_modified": bool(dirty)}


def environment(plan: Plan, loadgen: str) -> dict[str, Any]:
    uvloop = _version("uvloop")
    httptools = _version("httptools")
    loop = f"uvloop {uvloop}" if uvloop else "asyncio"
    if plan.server == "granian":
        server: dict[str, Any] = {
            "name": "granian",
            "version": _version("granian"),
            "interface": "asgi",
            "loop": loop,
            "http": "granian (Rust, hyper)",
            "workers": 1,
            "access_log": False,
        }
    else:
        server = {
            "name": "uvicorn",
            "version": _version("uvicorn"),
            "loop": loop,
            "http": f"httptools {httptools}" if httptools else f"h11 {_version('h11')}",
            "workers": 1,
            "config": "gateway.server.build_config",
        }
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "server": server,
        "event_loop": loop,
        "starlette": _version("starlette"),
        "code": _code(),
        "load_generator": (
            {"name": wrk_version(), "threads": plan.wrk_threads, "connections": plan.connections}
            if loadgen == "wrk"
            else {"name": "asyncio (bench.http)", "connections": plan.connections}
        ),
    }


# -- the run ------------------------------------------------------------------------------------


def _machine_busy_s() -> float:
    """CPU seconds all CPUs of the machine have been busy (``/proc/stat``, not idle/iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    ticks = [int(f) for f in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    if len(ticks) > 8:
        busy -= ticks[8] + (ticks[9] if len(ticks) > 9 else 0)  # guest time is in user already
    return busy / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """CPU seconds of this process and its reaped children (wrk, py-spy)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Sampler:
    """CPU shares (CPU seconds over wall seconds) during one phase.

    Per server, for the harness itself (``load_generator``: this process and wrk), and for
    ``other_processes``: whatever else kept the machine's CPUs busy. On a shared machine the
    last one says whether the figures are clean.
    """

    def __init__(
        self,
        pids: dict[str, int | tuple[int, ...]],
        parts: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.pids = {name: (pid,) if isinstance(pid, int) else pid for name, pid in pids.items()}
        #: Shares reported as well, of processes already counted under one of ``pids``.
        self.parts = parts or {}
        self.wall = time.monotonic()
        self.elapsed = 0.0
        self.cpu = {name: self._cpu(name) for name in [*self.pids, *self.parts]}
        self.machine = _machine_busy_s()
        self.own = _own_s()

    def shares(self) -> dict[str, float]:
        wall = self.elapsed = time.monotonic() - self.wall
        if wall <= 0:
            return {}
        out = {name: round((self._cpu(name) - self.cpu[name]) / wall, 3) for name in self.pids}
        out["load_generator"] = round((_own_s() - self.own) / wall, 3)
        machine = (_machine_busy_s() - self.machine) / wall
        out["other_processes"] = round(max(0.0, machine - sum(out.values())), 3)
        for name in self.parts:
            out[name] = round((self._cpu(name) - self.cpu[name]) / wall, 3)
        return out

    def _cpu(self, name: str) -> float:
        pids = self.parts[name] if name in self.parts else self.pids[name]
        return sum(cpu_seconds(pid) for pid in pids)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _round(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class Bench:
    def __init__(self, plan: Plan, stack: Stack, workdir: Path) -> None:
        self.plan = plan
        self.stack = stack
        self.gw_port = stack.gateway.port
        self.gw_host = f"{LOOPBACK}:{self.gw_port}"
        self.addresses = AddressBook(plan.address_form)
        self.names = DeviceNames()
        self.clock = ObservedClock()
        self.tokens = DeviceTokens(secret=stack.jwt_secret)
        self._token_cache: dict[str, str] = {}
        self.loadgen = self._pick_loadgen()
        self.figures: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.calls_seq = 0
        self.timings_index = 0
        self.geocode_distinct = 0
        self.geocode_sequential_misses = 0.0
        self.registered = 0
        self.control = httpx.AsyncClient(timeout=60.0, trust_env=False)
        self.gw_pid = stack.gateway.server_pid()
        self.base_pid = stack.baseline.server_pid()
        self.sim_pid = stack.simulator.server_pid()
        self.workdir = workdir  # wrk scripts; removed with the run's temporary directory

    def _pick_loadgen(self) -> str:
        if self.plan.loadgen == "auto":
            return "wrk" if wrk_path() else "asyncio"
        if self.plan.loadgen == "wrk" and not wrk_path():
            raise SystemExit("--loadgen wrk: wrk is not installed")
        return self.plan.loadgen

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # -- helpers -----------------------------------------------------------------------------

    def token(self, device: Device) -> str:
        if self.plan.auth == "admin":
            return self.stack.admin_key
        found = self._token_cache.get(device.aeui)
        if found is None:
            found = self.tokens.mint(device.aeui, 6 * 3600)
            self._token_cache[device.aeui] = found
        return found

    def request(self, device: Device, address: str | dict[str, str]) -> bytes:
        return report_request(
            self.gw_host, device.body(address, self.clock.next()), self.token(device)
        )

    async def sim_calls(self) -> list[dict[str, Any]]:
        """Call-log entries since the last read."""
        url = f"{self.stack.simulator.base_url}/_sim/calls"
        calls: list[dict[str, Any]] = (
            await self.control.get(url, params={"since": self.calls_seq})
        ).json()
        if calls:
            self.calls_seq = max(int(c["seq"]) for c in calls)
        return calls

    async def timings(self) -> list[dict[str, Any]]:
        url = f"{self.stack.simulator.base_url}/_bench/timings"
        rows: list[dict[str, Any]] = (
            await self.control.get(url, params={"since": self.timings_index})
        ).json()
        if rows:
            self.timings_index = max(int(r["index"]) for r in rows)
        return rows

    async def metric(self, name: str, **labels: str) -> float:
        """A sample of the gateway's ``/metrics`` (0 when absent)."""
        text = (await self.control.get(f"{self.stack.gateway.base_url}/metrics")).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    async def geocode_misses(self) -> float:
        return await self.metric("dlr_cache_lookups_total", cache="geocode", result="miss")

    def devices(self, prefix: str, count: int) -> list[Device]:
        return [Device.numbered(a, n) for n, a in enumerate(self.names.fresh(prefix, count))]

    def sampler(self, others: dict[str, int] | None = None) -> Sampler:
        # The gateway's CPU is its server's and its delivery process's (looked up now: the
        # delivery process is started again if it dies), its delivery process's also apart.
        gateway = self.stack.gateway.pids()
        return Sampler(
            {
                "gateway": gateway,
                "baseline": self.base_pid,
                "simulator": self.sim_pid,
                **(others or {}),
            },
            parts={"gateway_delivery_process": gateway[1:]},
        )

    # -- phase 1: upstream calls per report ---------------------------------------------------

    async def phase_upstream_calls(self) -> None:
        k = max(2, self.plan.per_kind)
        self.log(f"upstream calls per report: {k} reports of each kind, one at a time")
        devices = self.devices("calls", k)
        first = self.addresses.fresh(k)
        later = self.addresses.fresh(k)
        self.geocode_distinct += 2 * k
        self.registered += k
        kinds: dict[str, list[tuple[Device, str | dict[str, str]]]] = {
            "new_device": [(d, first[i]) for i, d in enumerate(devices)],
            "unchanged": [(d, first[i]) for i, d in enumerate(devices)],
            "move_known": [(d, first[(i + 1) % k]) for i, d in enumerate(devices)],
            "move_new": [(d, later[i]) for i, d in enumerate(devices)],
        }
        await self.sim_calls()
        misses0 = await self.geocode_misses()
        per_report: dict[str, float] = {}
        detail: dict[str, Any] = {}
        pool = Pool(LOOPBACK, self.gw_port)
        try:
            for kind, pairs in kinds.items():
                statuses: Counter[int] = Counter()
                changes: Counter[str] = Counter()
                for device, address in pairs:
                    answer = await pool.send(self.request(device, address))
                    statuses[answer.status] += 1
                    changes[_changes(answer)] += 1
                # Calls a report sets off later (repairs, the reconciler's next tick) count.
                await asyncio.sleep(self.plan.settle_s)
                calls = await self.sim_calls()
                per_report[kind] = round(len(calls) / len(pairs), 3)
                writes = [c for c in calls if c["method"] != "GET"]
                detail[kind] = {
                    "reports": len(pairs),
                    # v2's endpoint writes are orders, followed by status reads: its floor is
                    # in writes (0/1/2/2) plus a status read per endpoint write.
                    "writes_per_report": round(len(writes) / len(pairs), 3),
                    "statuses": {str(s): n for s, n in statuses.items()},
                    "changes": dict(changes),
                    "calls": dict(Counter(f"{c['operation']} {c['status']}" for c in calls)),
                }
        finally:
            await pool.close()
        misses = await self.geocode_misses() - misses0
        self.geocode_sequential_misses += misses
        self.figures["upstream_calls_per_report"] = per_report
        self.details["upstream_calls"] = detail
        self.details["geocoder_sequential"] = {
            "distinct_addresses": 2 * k,
            "geocode_cache_misses": misses,
            "per_distinct_address": _round(misses / (2 * k)),
        }

    # -- phase 2: geocoder burst ----------------------------------------------------------------

    async def phase_geocoder_burst(self) -> None:
        g, m = self.plan.burst_addresses, self.plan.burst_devices
        self.log(f"geocoder burst: {g} new addresses, each from {m} new devices at once")
        addresses = self.addresses.fresh(g)
        devices = self.devices("burst", g * m)
        requests = [
            self.request(devices[a * m + j], addresses[a]) for j in range(m) for a in range(g)
        ]
        await self.sim_calls()
        misses0 = await self.geocode_misses()
        statuses, failures = await send_all(
            LOOPBACK,
            self.gw_port,
            requests,
            concurrency=len(requests),
            timeout_s=self.plan.phase_timeout_s,
        )
        misses = await self.geocode_misses() - misses0
        calls = await self.sim_calls()
        creates = sum(1 for c in calls if c["operation"] in ("createLocation", "addAddress"))
        self.registered += g * m
        self.details["geocoder_burst"] = {
            "distinct_addresses": g,
            "reports": len(requests),
            "statuses": {str(s): n for s, n in statuses.items()},
            "failures": [f.decode(errors="replace") for f in failures],
            "geocode_cache_misses": misses,
            "per_distinct_address": _round(misses / g),
            "create_location_calls_per_distinct_address": _round(creates / g),
            "upstream_calls_per_report": _round(len(calls) / len(requests)),
        }

    # -- phase 3: warm-up -----------------------------------------------------------------------

    async def phase_warmup(self) -> tuple[list[Device], list[str | dict[str, str]], list[int]]:
        n = self.plan.devices - self.plan.devices % max(1, self.plan.wrk_threads)
        k = self.plan.addresses
        self.log(f"warm-up: registering {n} load devices over {k} addresses")
        devices = self.devices("load", n)
        addresses = self.addresses.fresh(k)
        current = [i % k for i in range(n)]
        started = time.monotonic()
        statuses, failures = await send_all(
            LOOPBACK,
            self.gw_port,
            (self.request(d, addresses[current[i]]) for i, d in enumerate(devices)),
            concurrency=min(100, n),
            timeout_s=self.plan.phase_timeout_s,
        )
        calls = await self.sim_calls()
        self.registered += n
        self.details["warmup"] = {
            "devices": n,
            "addresses": k,
            "seconds": round(time.monotonic() - started, 2),
            "statuses": {str(s): c for s, c in statuses.items()},
            "failures": [f.decode(errors="replace") for f in failures],
            "upstream_calls": len(calls),
        }
        if statuses.get(200, 0) != n:
            raise RuntimeError(f"warm-up failed: {dict(statuses)} {failures[:2]}")
        return devices, addresses, current

    # -- load runs ----------------------------------------------------------------------------

    def stream(
        self,
        devices: Sequence[Device],
        addresses: Sequence[str | dict[str, str]],
        current: Sequence[int],
        *,
        moving: bool,
    ) -> ReportStream:
        return ReportStream(
            devices=devices,
            addresses=addresses,
            current=current,
            moving=moving,
            base_us=self.clock.reserve(WRK_SPAN_US),
            tokens=[self.token(d) for d in devices] if self.plan.auth == "device" else None,
        )

    async def load(
        self,
        service: Service,
        stream: ReportStream,
        duration_s: float,
        *,
        profile_as: str | None = None,
    ) -> tuple[LoadResult, dict[str, float]]:
        """One closed-loop run of ``stream`` against ``service``, with CPU shares."""
        is_base = service is self.stack.baseline
        name, pid = ("baseline", self.base_pid) if is_base else ("gateway", self.gw_pid)
        spy = None
        if profile_as and self.plan.profile_dir is not None:
            spy = profiling.start(pid, self.plan.profile_dir / f"{profile_as}.txt", duration_s)
        sampler = self.sampler()
        try:
            if self.loadgen == "wrk":
                script = self.workdir / f"stream-{stream.base_us}.lua"
                admin = self.stack.admin_key if self.plan.auth == "admin" else None
                script.write_text(stream.lua(threads=self.plan.wrk_threads, admin_key=admin))
                url = f"{service.base_url}/v1/location-reports"
                result = await run_wrk(
                    url,
                    script,
                    connections=self.plan.connections,
                    threads=self.plan.wrk_threads,
                    duration_s=duration_s,
                )
            else:
                host = f"{LOOPBACK}:{service.port}"
                tokens = stream.tokens
                n = len(stream.devices)

                def make(i: int) -> bytes:
                    token = tokens[i % n] if tokens is not None else self.stack.admin_key
                    return report_request(host, stream.body(i), token)

                result = await closed_loop(
                    LOOPBACK,
                    service.port,
                    make,
                    connections=self.plan.connections,
                    duration_s=duration_s,
                )
            shares = sampler.shares()
            if result.requests:
                # CPU time per request: robust where wall-clock rates are not (a busy machine).
                cpu = shares.get(name, 0.0) * sampler.elapsed
                result.server_cpu_us_per_request = cpu / result.requests * 1e6
            # Let requests wrk left in flight finish before anyone reads counters.
            await asyncio.sleep(0.25)
        finally:
            if spy is not None:
                summary = profiling.finish(spy)
                if summary is not None:
                    self.details.setdefault("profile", {})[profile_as] = summary
        return result, shares

    # -- phase 4: throughput ------------------------------------------------------------------

    async def phase_throughput(
        self, devices: list[Device], addresses: list[str | dict[str, str]], current: list[int]
    ) -> None:
        plan = self.plan
        self.log(
            f"throughput: baseline vs unchanged reports, {plan.connections} connections, "
            f"{plan.duration_s:g} s each ({self.loadgen})"
        )
        runs: dict[str, Any] = {}
        if plan.warmup_s > 0:
            await self.load(
                self.stack.baseline,
                self.stream(devices, addresses, current, moving=False),
                plan.warmup_s,
            )
        base, base_cpu = await self.load(
            self.stack.baseline,
            self.stream(devices, addresses, current, moving=False),
            plan.duration_s,
            profile_as="baseline",
        )
        runs["baseline"] = {**base.to_json(), "cpu_share": base_cpu}
        if plan.warmup_s > 0:
            await self.load(
                self.stack.gateway,
                self.stream(devices, addresses, current, moving=False),
                plan.warmup_s,
            )
        await self.sim_calls()
        unchanged0 = await self.metric("dlr_reports_total", result="unchanged")
        gw, gw_cpu = await self.load(
            self.stack.gateway,
            self.stream(devices, addresses, current, moving=False),
            plan.duration_s,
            profile_as="unchanged",
        )
        unchanged = await self.metric("dlr_reports_total", result="unchanged") - unchanged0
        calls = await self.sim_calls()
        runs["unchanged"] = {
            **gw.to_json(),
            "cpu_share": gw_cpu,
            "reports_counted_unchanged": unchanged,
            "upstream_calls": len(calls),
        }
        self.details["throughput"] = runs
        self.figures["baseline_rps"] = round(base.rps, 1)
        self.figures["unchanged_rps"] = round(gw.rps, 1)
        self.figures["unchanged_vs_baseline_ratio"] = (
            round(gw.rps / base.rps, 3) if base.rps > 0 else None
        )
        base_us, gw_us = base.server_cpu_us_per_request, gw.server_cpu_us_per_request
        self.figures["baseline_cpu_us_per_request"] = _round(base_us, 1) if base_us else None
        self.figures["unchanged_cpu_us_per_request"] = _round(gw_us, 1) if gw_us else None
        self.figures["unchanged_vs_baseline_cpu_ratio"] = (
            round(base_us / gw_us, 3) if base_us and gw_us else None
        )

    # -- phase 5: changed latency (open loop) -------------------------------------------------

    async def phase_changed_latency(
        self, devices: list[Device], addresses: list[str | dict[str, str]], current: list[int]
    ) -> list[int]:
        plan = self.plan
        p = min(plan.changed_devices, len(devices))
        count = max(1, round(plan.changed_rate * plan.changed_s))
        self.log(
            f"changed latency: {count} moves between known places at "
            f"{plan.changed_rate:g}/s (open loop) over {p} devices"
        )
        current = list(current)
        k = len(addresses)
        requests: list[bytes] = []
        owners: list[int] = []
        for i in range(count):
            d = i % p
            current[d] = (current[d] + 1) % k
            requests.append(self.request(devices[d], addresses[current[d]]))
            owners.append(d)
        await self.sim_calls()
        await self.timings()
        sampler = self.sampler()
        timed = await open_loop(
            LOOPBACK,
            self.gw_port,
            requests,
            rate=plan.changed_rate,
            timeout_s=min(60.0, plan.phase_timeout_s),
        )
        shares = sampler.shares()
        rows = await self.timings()
        calls = await self.sim_calls()
        figures, detail = _pair(timed, rows, [devices[d] for d in owners])
        detail["upstream_calls_per_report"] = _round(len(calls) / count)
        detail["calls"] = dict(Counter(f"{c['operation']} {c['status']}" for c in calls))
        detail["cpu_share"] = shares
        detail["offered_rate"] = plan.changed_rate
        self.figures.update(figures)
        self.details["changed_latency"] = detail
        return current

    # -- phase 6: changed throughput (closed loop) --------------------------------------------

    async def phase_changed_throughput(
        self, devices: list[Device], addresses: list[str | dict[str, str]], current: list[int]
    ) -> None:
        plan = self.plan
        duration = min(plan.duration_s, 15.0)
        self.log(
            f"changed throughput: moves between known places, {plan.connections} "
            f"connections, {duration:g} s"
        )
        await self.sim_calls()
        applied0 = await self.metric("dlr_reports_total", result="applied")
        result, shares = await self.load(
            self.stack.gateway,
            self.stream(devices, addresses, current, moving=True),
            duration,
            profile_as="changed",
        )
        applied = await self.metric("dlr_reports_total", result="applied") - applied0
        calls = await self.sim_calls()
        self.figures["changed_rps"] = round(result.rps, 1)
        us = result.server_cpu_us_per_request
        self.figures["changed_cpu_us_per_request"] = _round(us, 1) if us else None
        self.details["changed_throughput"] = {
            **result.to_json(),
            "cpu_share": shares,
            "reports_counted_applied": applied,
            "upstream_calls": len(calls),
            "upstream_calls_per_applied_report": _round(len(calls) / applied) if applied else None,
        }

    # -- phase 7: memory ------------------------------------------------------------------------

    async def phase_memory(self) -> None:
        plan = self.plan
        n, k = plan.rss_devices, plan.rss_addresses
        self.log(
            f"memory: registering {n} new devices over {k} new addresses, "
            f"{plan.register_concurrency} at a time"
        )
        rss_before = status_kb(self.gw_pid, "VmRSS") or 0
        devices = self.names.fresh("rss", n)
        addresses = self.addresses.fresh(k)
        misses0 = await self.geocode_misses()

        def requests() -> Iterator[bytes]:
            for i, aeui in enumerate(devices):
                yield self.request(Device.numbered(aeui, i), addresses[i % k])

        started = time.monotonic()
        sampler = self.sampler()
        statuses, failures = await send_all(
            LOOPBACK,
            self.gw_port,
            requests(),
            concurrency=plan.register_concurrency,
            timeout_s=plan.phase_timeout_s,
            progress_every_s=30.0 if n >= 20_000 else 0.0,
        )
        seconds = time.monotonic() - started
        shares = sampler.shares()
        misses = await self.geocode_misses() - misses0
        self.geocode_sequential_misses += misses
        hwm = status_kb(self.gw_pid, "VmHWM") or 0
        rss = status_kb(self.gw_pid, "VmRSS") or 0
        ok = statuses.get(200, 0)
        sent = sum(c for s, c in statuses.items() if s != -2)
        # Only the addresses of the reports sent count (a timed-out phase sends fewer).
        self.geocode_distinct += min(k, sent)
        self.registered += ok
        self.figures["peak_rss_mb"] = round(hwm / 1024, 1)
        self.figures["new_device_cpu_us_per_report"] = (
            round(shares["gateway"] * sampler.elapsed / ok * 1e6, 1) if ok else None
        )
        self.details["memory"] = {
            "devices_offered_in_phase": n,
            "devices_registered_in_phase": ok,
            "reports_not_sent_in_time": statuses.get(-2, 0),
            "devices_known_to_gateway": self.registered,
            "distinct_addresses_in_phase": k,
            "statuses": {str(s): c for s, c in statuses.items()},
            "failures": [f.decode(errors="replace") for f in failures],
            "seconds": round(seconds, 1),
            "reports_per_s": round(sent / seconds, 1) if seconds > 0 else None,
            "rss_before_mb": round(rss_before / 1024, 1),
            "rss_after_mb": round(rss / 1024, 1),
            "vm_hwm_mb": round(hwm / 1024, 1),
            # The delivery process's (GATEWAY_EVENT_DELIVERY=process), not in peak_rss_mb.
            "delivery_process_hwm_mb": [
                round((status_kb(pid, "VmHWM") or 0) / 1024, 1)
                for pid in self.stack.gateway.pids()[1:]
            ],
            "geocode_cache_misses": misses,
            "cpu_share": shares,
        }

    # -- all of it ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            if self.plan.only_memory:
                await self.phase_memory()
                return self.figures
            if self.plan.only_throughput:
                devices, addresses, current = await self.phase_warmup()
                await self.phase_throughput(devices, addresses, current)
                return self.figures
            if self.plan.only_faults:
                await faults.phase_faults(self)
                return self.figures
            if self.plan.only_query:
                await query.phase_emergency_query(self)
                return self.figures
            await self.phase_upstream_calls()
            await self.phase_geocoder_burst()
            devices, addresses, current = await self.phase_warmup()
            await self.phase_throughput(devices, addresses, current)
            current = await self.phase_changed_latency(devices, addresses, current)
            await self.phase_changed_throughput(devices, addresses, current)
            await self.phase_memory()
            await query.phase_emergency_query(self)
            await network.phase_network(self)
            await faults.phase_faults(self)  # last: held writes land for 30 s after it
            # The miss counter counts every lookup that found nothing cached, also those that
            # then joined a geocoder call already in flight; so it equals geocoder calls only
            # where no two reports of one new address overlap: phase 1 (one report at a time)
            # and the memory phase (reports of one address are `rss_addresses` apart).
            self.figures["geocoder_calls_per_distinct_address"] = _round(
                self.geocode_sequential_misses / self.geocode_distinct
            )
            self.details["geocoder_total"] = {
                "distinct_addresses_counted": self.geocode_distinct,
                "geocode_cache_misses_counted": self.geocode_sequential_misses,
                "geocode_cache_misses_all_phases": await self.geocode_misses(),
                "note": "misses counted where no two reports of one new address overlap; "
                "concurrent phases (burst, warm-up) count single-flight joiners as misses",
            }
        finally:
            await self.control.aclose()
        self.details["total_seconds"] = round(time.monotonic() - started, 1)
        self.details["other_processes_cores"] = _contention(self.details)
        return self.figures


def _contention(details: dict[str, Any]) -> dict[str, float]:
    """CPU cores other processes used during each load phase (0 on a quiet machine)."""
    phases = {
        "baseline": details.get("throughput", {}).get("baseline", {}),
        "unchanged": details.get("throughput", {}).get("unchanged", {}),
        "changed_latency": details.get("changed_latency", {}),
        "changed_throughput": details.get("changed_throughput", {}),
        "memory": details.get("memory", {}),
        "faults_baseline": details.get("faults", {}).get("baseline", {}),
        "faults": details.get("faults", {}).get("faults", {}),
    }
    return {
        name: phase["cpu_share"].get("other_processes", 0.0)
        for name, phase in phases.items()
        if "cpu_share" in phase
    }


def _changes(answer: Answer) -> str:
    try:
        body = json.loads(answer.body)
        changes = body["changes"]
        return f"location={changes['location']} endpoint={changes['endpoint']}"
    except (ValueError, KeyError, TypeError):
        return f"status={answer.status}"


def _pair(
    timed: Sequence[Timed], rows: Sequence[dict[str, Any]], devices: Sequence[Device]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each report's end-to-end time and the upstream handling time of its calls."""
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_endpoint.setdefault(row["path"].rsplit("/", 1)[-1], []).append(row)
    e2e: list[float] = []
    upstream: list[float] = []
    overhead: list[float] = []
    before: list[float] = []
    after: list[float] = []
    statuses: Counter[int] = Counter()
    changes: Counter[str] = Counter()
    unmatched = 0
    for t in timed:
        statuses[t.status] += 1
        changes[_changes(Answer(t.status, t.body))] += 1
        if t.status != 200:
            continue
        eid = endpoint_id_for(devices[t.index].aeui)
        mine = [r for r in by_endpoint.get(eid, []) if t.start <= r["start"] <= t.end]
        if not mine:
            unmatched += 1
            continue
        total = t.end - t.start
        up = sum(r["end"] - r["start"] for r in mine)
        e2e.append(total)
        upstream.append(up)
        overhead.append(total - up)
        before.append(min(r["start"] for r in mine) - t.start)
        after.append(t.end - max(r["end"] for r in mine))

    def q(values: list[float], p: float) -> float | None:
        value = percentile(values, p)
        return _ms(value) if math.isfinite(value) else None

    figures = {
        "changed_p50_ms": q(e2e, 0.5),
        "changed_p99_ms": q(e2e, 0.99),
        "upstream_p50_ms": q(upstream, 0.5),
        "changed_overhead_p50_ms": q(overhead, 0.5),
        "changed_overhead_p99_ms": q(overhead, 0.99),
    }
    detail = {
        "reports": len(timed),
        "paired": len(e2e),
        "unmatched": unmatched,
        "statuses": {str(s): n for s, n in statuses.items()},
        "changes": dict(changes),
        "upstream_p99_ms": q(upstream, 0.99),
        "changed_max_ms": _ms(max(e2e)) if e2e else None,
        "overhead_max_ms": _ms(max(overhead)) if overhead else None,
        "before_upstream_p50_ms": q(before, 0.5),
        "before_upstream_p99_ms": q(before, 0.99),
        "after_upstream_p50_ms": q(after, 0.5),
        "after_upstream_p99_ms": q(after, 0.99),
    }
    return figures, detail


# -- output ---------------------------------------------------------------------------------------

_TABLE: tuple[tuple[str, str, str], ...] = (
    ("baseline_rps", "req/s", "bare Starlette, same server and load"),
    ("unchanged_rps", "req/s", "unchanged reports, 0 upstream calls"),
    ("unchanged_vs_baseline_ratio", "", "target >= 0.30 (aim 0.5)"),
    ("changed_p50_ms", "ms", "end to end, moves at a fixed rate"),
    ("changed_p99_ms", "ms", ""),
    ("upstream_p50_ms", "ms", "simulator's handling time per report"),
    ("changed_overhead_p50_ms", "ms", "end to end minus upstream"),
    ("changed_overhead_p99_ms", "ms", "target <= 10 (aim 2)"),
    ("changed_rps", "req/s", "closed-loop moves (1 upstream call each)"),
    ("baseline_cpu_us_per_request", "us", "server CPU time per request"),
    ("unchanged_cpu_us_per_request", "us", "gateway CPU time per unchanged report"),
    ("unchanged_vs_baseline_cpu_ratio", "", "baseline CPU / unchanged CPU (load-proof)"),
    ("changed_cpu_us_per_request", "us", "gateway CPU per move (1 upstream call)"),
    ("new_device_cpu_us_per_report", "us", "gateway CPU per new device (2-3 calls)"),
    ("geocoder_calls_per_distinct_address", "", "target 1"),
    ("peak_rss_mb", "MiB", "gateway VmHWM after the memory phase"),
    ("emergency_query_p50_ms", "ms", "call-time location query, open loop at 500/s"),
    ("emergency_query_p99_ms", "ms", "target <= 2 (the carrier waits 450)"),
    ("emergency_query_rps", "req/s", "queries answered per second"),
    ("emergency_query_cpu_us_per_request", "us", "gateway CPU per query"),
    ("emergency_query_baseline_cpu_us_per_request", "us", "bare Starlette, same rate: the floor"),
    ("emergency_query_vs_baseline_cpu_ratio", "", "baseline CPU / query CPU, same rate"),
    ("emergency_query_subscribed_p50_ms", "ms", "the same, with a webhook subscription"),
    ("emergency_query_subscribed_p99_ms", "ms", ""),
    ("emergency_query_subscribed_p50_ratio", "", "subscribed / without, interleaved; target ~1"),
    ("emergency_query_subscribed_p99_ratio", "", "subscribed / without, interleaved; target ~1"),
    ("emergency_query_control_p99_ratio", "", "without / without, the same rounds: the noise"),
    ("emergency_query_subscribed_cpu_us_per_request", "us", "with deliveries; CPU per query"),
    ("network_resolve_p99_us", "us", "wiremap lookup, 100 000 entries; target <= 1000"),
    ("network_resolve_cpu_us", "us", "CPU per wiremap lookup"),
    ("network_resolve_p99_vs_1k_ratio", "", "p99 at 100 000 entries / at 1 000"),
    ("faults_success_share", "", "30 % of carrier calls time out; target >= 0.667"),
    ("faults_500s", "", "reports answered 500 under faults; target 0"),
    ("faults_p50_ms", "ms", "every report answered, under faults"),
    ("faults_p99_ms", "ms", ""),
    ("faults_vs_baseline_rps_ratio", "", "reports/s under faults / without (200 ms both)"),
)


def table(figures: dict[str, Any], details: dict[str, Any]) -> str:
    lines = [f"{'figure':<38} {'value':>12}  {'unit':<6} note", "-" * 96]
    for name, unit, note in _TABLE:
        value = figures.get(name)
        if name == "peak_rss_mb" and "memory" in details:
            note = f"{note} ({details['memory']['devices_registered_in_phase']} new devices)"
        lines.append(f"{name:<38} {_fmt(value):>12}  {unit:<6} {note}")
    calls = figures.get("upstream_calls_per_report", {})
    text = ", ".join(f"{k} {_fmt(v)}" for k, v in calls.items())
    upstream = details.get("upstream_calls", {})
    if any(
        op.startswith("getOrderDetails") for k in upstream.values() for op in k.get("calls", {})
    ):
        writes = ", ".join(f"{k} {_fmt(v.get('writes_per_report'))}" for k, v in upstream.items())
        lines.append(
            f"{'upstream_calls_per_report':<38} {text}  (v2: writes {writes}; floor 0/1/2/2"
        )
        lines.append(f"{'':<38} plus at least one order status read per endpoint write)")
    else:
        lines.append(f"{'upstream_calls_per_report':<38} {text}  (floor 0/1/2/3)")
    runs = {
        "baseline": details.get("throughput", {}).get("baseline", {}),
        "unchanged": details.get("throughput", {}).get("unchanged", {}),
        "changed_throughput": details.get("changed_throughput", {}),
    }
    for name, run in runs.items():
        failed = run.get("non_2xx", 0) + run.get("errors", 0)
        if run.get("requests") and failed > 0.01 * run["requests"]:
            lines.append(
                f"WARNING: {failed} of {run['requests']} requests of the {name} run failed "
                "(non-2xx or socket errors): its rate is not the figure it claims to be."
            )
    busy = details.get("other_processes_cores", {})
    if busy and max(busy.values()) > 0.2:
        worst = ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
        lines.append(
            f"WARNING: other processes kept CPUs busy during the load phases (cores: {worst}); "
            "these figures are not from a quiet machine."
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


# -- the command ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the DLR gateway on loopback."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a run of about 2 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny phases, for the test suite")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write the JSON figures (default: %(default)s)",
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="the server for the gateway and the baseline",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "asyncio"),
        default="auto",
        help="wrk when installed (auto), else the asyncio generator",
    )
    parser.add_argument(
        "--auth",
        choices=("admin", "device"),
        default="admin",
        help="reports authenticated by the admin key or per-device JWTs",
    )
    parser.add_argument(
        "--address-form",
        choices=("string", "object"),
        default="string",
        help="addresses as free-form strings or seed address objects",
    )
    parser.add_argument(
        "--api",
        choices=("seed", "v2"),
        default="seed",
        help="the carrier API: the seed API or Bandwidth's v2 emergency provisioning API "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--order-seconds",
        type=float,
        help="with --api v2: seconds an endpoint order stays in progress (0.05)",
    )
    parser.add_argument("--latency-ms", type=float, help="upstream latency injected (20)")
    parser.add_argument("--connections", type=int, help="closed-loop connections (50)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run")
    parser.add_argument("--devices", type=int, help="load devices (1000)")
    parser.add_argument("--changed-rate", type=float, help="open-loop moves per second (50)")
    parser.add_argument("--rss-devices", type=int, help="devices for peak_rss_mb")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the gateway during the unchanged, changed and query runs",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    parser.add_argument(
        "--store",
        choices=stores.STORES,
        default="sqlite",
        help="the gateway's state store (default: the embedded SQLite file)",
    )
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="an existing database for --store (postgres: else a throwaway local cluster)",
    )
    parser.add_argument(
        "--store-naive",
        action="store_true",
        help="no warm binding cache, no group commit: a read and a write per report",
    )
    only = parser.add_mutually_exclusive_group()  # one phase set, not both
    only.add_argument(
        "--only-throughput",
        action="store_true",
        help="only the warm-up and the baseline/unchanged throughput runs",
    )
    only.add_argument(
        "--only-memory",
        action="store_true",
        help="only the memory phase (peak_rss_mb after --rss-devices new devices)",
    )
    only.add_argument(
        "--only-query",
        action="store_true",
        help="only the emergency-call query phase (without, then with a webhook subscription)",
    )
    only.add_argument(
        "--only-faults",
        action="store_true",
        help="only the carrier-faults phase (30%% of calls time out, 200 ms latency)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the gateway on one CPU, the harness and the other servers on the rest",
    )
    parser.add_argument(
        "--phase-timeout", type=float, help="seconds any one phase may take (quick: 120)"
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway, e.g. GATEWAY_UPSTREAM_MAX_CONNECTIONS=16",
    )
    return parser


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = Plan.for_mode("smoke" if args.smoke else "quick" if args.quick else "full")
    plan.api = args.api
    if args.order_seconds is not None:
        if args.order_seconds < 0:
            raise SystemExit("--order-seconds must not be negative")
        plan.order_seconds = args.order_seconds
    plan.server = args.server
    plan.loadgen = args.loadgen
    plan.auth = args.auth
    plan.address_form = args.address_form
    for attr, value in (
        ("latency_ms", args.latency_ms),
        ("connections", args.connections),
        ("duration_s", args.duration),
        ("devices", args.devices),
        ("changed_rate", args.changed_rate),
        ("rss_devices", args.rss_devices),
    ):
        if value is not None:
            if value < 0:
                raise SystemExit(f"--{attr.replace('_', '-')} must not be negative")
            setattr(plan, attr, value)
    if args.rss_devices is not None:
        plan.rss_addresses = max(1, args.rss_devices // 10)
    for item in args.gateway_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--gateway-env wants NAME=VALUE, not {item!r}")
        plan.gateway_env[name] = value
    plan.profile_dir = args.profile
    plan.log_dir = args.log_dir
    plan.store = args.store
    plan.store_url = args.store_url
    plan.store_naive = args.store_naive
    plan.only_throughput = args.only_throughput
    plan.only_memory = args.only_memory
    plan.only_faults = args.only_faults
    plan.only_query = args.only_query
    if args.pin:
        plan.pinned = pinned_cpus()
        if plan.pinned is None:
            raise SystemExit("--pin needs at least two CPUs")
    if args.phase_timeout is not None:
        if args.phase_timeout <= 0:
            raise SystemExit("--phase-timeout must be positive")
        plan.phase_timeout_s = args.phase_timeout
    if plan.server == "granian" and _version("granian") is None:
        raise SystemExit("--server granian: granian is not installed (pip install granian)")
    if plan.profile_dir is not None:
        plan.profile_dir.mkdir(parents=True, exist_ok=True)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = plan_from_args(args)
    with (
        terminate_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="dlr-bench-") as tmp,
        stores.prepared(plan.store, plan.store_url, naive=plan.store_naive) as store,
    ):
        plan.gateway_env = {**store["env"], **plan.gateway_env}
        services = Services()
        try:
            stack = start_stack(plan, services, Path(tmp))
            bench = Bench(plan, stack, Path(tmp))
            env = environment(plan, bench.loadgen)
            env["store"] = store["describe"]
            # As the processes have them (``--pin``), not as asked.
            env["cpus"] = {
                "gateway": sorted(os.sched_getaffinity(stack.gateway.pid)),
                "harness": sorted(os.sched_getaffinity(0)),
            }
            bench.log(
                f"servers: {env['server']['name']} {env['server']['version']}, "
                f"{env['event_loop']}, {env['server']['http']}; load: "
                f"{env['load_generator']['name']}; {env['cpu_count']} CPUs"
            )
            figures = asyncio.run(bench.run())
        except ServiceError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted; servers stopped", file=sys.stderr)
            return 130
        finally:
            stopping = time.monotonic()
            services.stop_all()
            took = time.monotonic() - stopping
            print(f"[bench] servers stopped in {took:.1f} s", file=sys.stderr)
    results: dict[str, Any] = {
        **figures,
        "environment": env,
        "details": bench.details,
        "plan": plan.to_json(),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(figures, bench.details))
    if "profile" in bench.details:
        print(profiling.render(bench.details["profile"]))
    print(f"\nwrote {args.out}")
    return 0
