"""Replicas (issue 8, "Must show"): real processes sharing one PostgreSQL database.

Every test runs one ``dlr-gateway simulator`` and ``dlr-gateway serve`` replicas on
127.0.0.1, on a fresh database migrated once with ``dlr-gateway db upgrade`` before they
start, and drives them with httpx (admin key). Output goes to files under ``tmp_path``.

``test_two_replicas_interleaved_out_of_order_and_a_kill``: 20 devices send 8 reports each
(increasing ``observedAt``) in a shuffled order, alternately to replicas A and B, 8 at a
time; halfway, B is killed (``SIGKILL``) with reports in flight and started again with the
same environment. A report whose connection died is sent again (to A), as the API asks.
What the design guarantees, and is asserted:

- every report is answered 200 (acknowledged) or 409 (superseded), and a 409 names the
  ``observedAt`` of a newer report that device really sent;
- the newest report of each device is acknowledged (nothing can supersede it);
- an older report never overwrites a newer acknowledged one: once a report is
  acknowledged, every older report of that device sent afterwards is answered 409, and the
  device's history (the ledger's applied changes) never goes back in ``observedAt``;
- at the end (after at most one periodic check), the carrier's record of every device is
  its newest acknowledged report.

``test_a_late_write_is_repaired_by_a_fresh_replica``: the carrier holds one write (the
"timeout" fault, held 6x the report deadline, applied when the hold ends): a move to Y via
replica A is answered 503; replica B starts (``GATEWAY_RECONCILE_INTERVAL=1``); the device
moves back to X via A (acknowledged); A is killed before the held write lands, so nothing
watches that write any more; it lands and puts the device back at Y; B's periodic check
repairs it within ``interval + 2 s`` of the landing, and counts it in
``dlr_reconcile_repairs_total{reason="regressed"}``.

``test_a_stale_repair_landing_after_a_newer_report_is_noticed`` (a regression test): a
periodic check decides to write the device's binding as the ledger had it; while its read
is out, a newer report is written and acknowledged through the other replica; the check's
write lands after it; its failed confirm makes the checking replica look again at once.

The simulator cannot change its faults at run time without losing state: ``/_sim/reset``
clears the carrier's records and drops held writes. So the second test starts it with a
low fault rate and a seed chosen (with the simulator's own fault picker) so that exactly
one call in a long run is held; the test pads the call count with harmless reads until
that call is the move's endpoint write. The carrier is healthy before and after it.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bandwidth import BandwidthClient
from gateway.bandwidth.models import Endpoint, Location
from gateway.dlr.address import normalize
from gateway.dlr.ids import endpoint_id_for, location_id_for
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.simulator import Simulator, SimulatorConfig
from tests import procs
from tests.harness import phone_of
from tests.pg import SKIP_ENV, PostgresServer, running_postgres, skip_requested
from tests.procs import ADMIN_KEY, Proc

CALLER = "REPLICA DEVICE"
PLACES = (
    "1600 Pennsylvania Ave NW, Washington, DC 20500",
    "350 5th Ave, New York, NY 10118",
    "400 Broad St, Seattle, WA 98109",
    "233 S Wacker Dr, Chicago, IL 60606",
    "600 Congress Ave, Austin, TX 78701",
)
#: Reports are dated this far in the past (the gateway refuses times minutes ahead).
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


@functools.cache
def location_id(address: str) -> str:
    """The location ID the gateway derives for ``address``."""
    normalized = normalize(address)
    assert normalized.valid and normalized.address is not None, normalized.errors
    return location_id_for(normalized.address)


def at(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).isoformat()


def report(aeui: str, address: str, seconds: int) -> dict[str, Any]:
    return {
        "alternateEndUserId": aeui,
        "callerName": CALLER,
        "telephoneNumber": phone_of(aeui),
        "observedAt": at(seconds),
        "address": address,
    }


def admin_client(base: str, timeout: float = 15.0) -> httpx.Client:
    return httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=timeout,
        trust_env=False,
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` every 50 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """As ``tests/store/conftest.py``: ``GATEWAY_TEST_POSTGRES_URL``, else a throwaway one."""
    if skip_requested():
        pytest.skip(f"{SKIP_ENV}=1: PostgreSQL tests skipped")
    with running_postgres() as server:
        yield server


@pytest.fixture
def database(postgres: PostgresServer, tmp_path: Path) -> Iterator[str]:
    """A fresh database, migrated once (``dlr-gateway db upgrade``) before any replica starts."""
    url = postgres.create_database()
    procs.upgrade(url, tmp_path)
    yield url
    postgres.drop_database(url)


@pytest.fixture
def processes() -> Iterator[list[Proc]]:
    """Every process a test starts; all stopped (SIGTERM, then SIGKILL) at its end."""
    started: list[Proc] = []
    yield started
    procs.stop_all(started)


# -- 1. two replicas, interleaved and out of order, one killed ------------------------------

DEVICES = 20
REPORTS = 8
CONCURRENCY = 8
#: Shares of the shuffled reports: before the kill, around it (B down), after B is back.
KILL_AT, BACK_AT = 64, 104
RECONCILE_INTERVAL = 2.0


@dataclass
class Sent:
    device: int
    k: int  # observedAt = EPOCH + k seconds; k = 0 .. REPORTS - 1
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    replica: str = ""
    started: float = 0.0  # the last attempt's start (monotonic)
    answered: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def aeui(self) -> str:
        return f"replica-{self.device}"

    @property
    def address(self) -> str:
        return PLACES[(self.device + self.k) % len(PLACES)]


@dataclass
class Drive:
    """Where the load goes: alternately A and B, or only A while B is down."""

    a: str
    b: str
    b_up: bool = True
    #: When each report now in flight at B was sent, by ``id`` of its ``Sent``.
    in_flight_b: dict[int, float] = field(default_factory=dict)
    interrupted: int = 0
    kill_tick: int = -1
    sent: list[Sent] = field(default_factory=list)

    async def send(self, http: httpx.AsyncClient, item: Sent, index: int) -> None:
        name = "b" if index % 2 and self.b_up else "a"
        for _attempt in range(5):
            at_b = name == "b"
            item.replica, item.started = name, time.monotonic()
            if at_b:
                self.in_flight_b[id(item)] = item.started
            try:
                response = await http.post(
                    f"{self.b if at_b else self.a}/v1/location-reports",
                    json=report(item.aeui, item.address, item.k),
                )
            except httpx.TransportError as exc:
                # Its replica died under it: the outcome is unknown, so send it again (to A).
                item.errors.append(f"{name}: {type(exc).__name__}")
                self.interrupted += at_b
                name = "a"
                await asyncio.sleep(0.05)
                continue
            finally:
                self.in_flight_b.pop(id(item), None)
            item.status, item.answered = response.status_code, time.monotonic()
            item.body = response.json()
            return
        raise AssertionError(f"{item.aeui}@{item.k}: no answer: {item.errors}")

    async def run(self, http: httpx.AsyncClient, items: list[tuple[int, Sent]]) -> None:
        queue = iter(items)

        async def worker() -> None:
            for index, item in queue:  # shared: each item is taken by one worker
                await self.send(http, item, index)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def test_two_replicas_interleaved_out_of_order_and_a_kill(
    tmp_path: Path, database: str, processes: list[Proc]
) -> None:
    sim = procs.simulator(tmp_path, "--latency-ms", "20")
    processes.append(sim.start())
    env = procs.gateway_environ(
        sim.port,
        database,
        GATEWAY_UPSTREAM_TIMEOUT="3",
        GATEWAY_UPSTREAM_DEADLINE="4",
        GATEWAY_REPORT_DEADLINE="5",
        # Periodic checks on, short: what repairs a write a killed replica left half done.
        GATEWAY_RECONCILE_INTERVAL=str(RECONCILE_INTERVAL),
        GATEWAY_RECONCILE_TICK="0.2",
        GATEWAY_RECONCILE_BATCH="10",
    )
    a, b = procs.replica("a", tmp_path, env), procs.replica("b", tmp_path, env)
    processes += [a.start(), b.start()]
    for proc in (sim, a, b):
        proc.wait_ready()

    items = [Sent(device, k) for device in range(DEVICES) for k in range(REPORTS)]
    random.Random(20261127).shuffle(items)
    # Sent "out of order": after a newer report of the same device was sent.
    newest_sent: dict[int, int] = {}
    out_of_order = 0
    for item in items:
        out_of_order += newest_sent.get(item.device, -1) > item.k
        newest_sent[item.device] = max(newest_sent.get(item.device, -1), item.k)
    assert out_of_order >= DEVICES, out_of_order
    numbered = list(enumerate(items))
    drive = Drive(a.base, b.base, sent=items)

    async def load() -> None:
        limits = httpx.Limits(max_connections=2 * CONCURRENCY)
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            limits=limits,
            timeout=15,
            trust_env=False,
        ) as http:
            await drive.run(http, numbered[:KILL_AT])

            async def kill_b() -> None:
                # With a report in flight at B, waiting on the carrier: kill -9, and start it
                # again at once. The carrier slowed meanwhile, so that a report in flight at B
                # for 100 ms is one waiting on it (not one answered that this loop has yet to
                # read, on a busy machine).
                await http.post(f"{sim.base}/_sim/config", json={"latencyMs": 300})
                for drive.kill_tick in range(600):
                    now = time.monotonic()
                    if any(now - at > 0.1 for at in drive.in_flight_b.values()):
                        break
                    await asyncio.sleep(0.005)
                b.kill()
                drive.b_up = False
                b.start()
                await http.post(f"{sim.base}/_sim/config", json={"latencyMs": 20})

            await asyncio.gather(drive.run(http, numbered[KILL_AT:BACK_AT]), kill_b())
            await asyncio.to_thread(b.wait_ready)
            drive.b_up = True
            await drive.run(http, numbered[BACK_AT:])

    began = time.monotonic()
    asyncio.run(load())
    loaded = time.monotonic()

    statuses = Counter(item.status for item in items)
    replicas = Counter(item.replica for item in items)
    summary = {
        "statuses": dict(statuses),
        "replicas": dict(replicas),
        "out_of_order": out_of_order,
        "interrupted_at_b": drive.interrupted,
        "kill_tick": drive.kill_tick,
        "load_seconds": round(loaded - began, 2),
    }
    print("\nreplicas:", summary)
    # Every report is answered, 200 or 409, and both replicas answered before and after.
    assert set(statuses) <= {200, 409}, [(i.aeui, i.k, i.status, i.body) for i in items][:10]
    assert statuses[409] > 0 and statuses[200] > 0, summary
    assert all(replicas[name] > 10 for name in ("a", "b")), summary
    assert any(item.replica == "b" for _, item in numbered[BACK_AT:]), "restarted B was not used"
    assert drive.interrupted >= 1, "the kill interrupted no report"

    by_device: dict[int, list[Sent]] = {}
    for item in items:
        by_device.setdefault(item.device, []).append(item)
    expected: dict[str, str] = {}
    for sent in by_device.values():
        times = {at(item.k) for item in sent}
        acknowledged = [item for item in sent if item.status == 200]
        for item in acknowledged:
            assert item.body["locationId"] == location_id(item.address), item.body
            assert item.body["observedAt"] == at(item.k), item.body
        for item in sent:
            if item.status == 409:
                newest = item.body["newestObservedAt"]
                assert newest in times and newest > at(item.k), (item.aeui, item.k, item.body)
        # The newest report of a device cannot be superseded: it is acknowledged.
        newest_item = max(sent, key=lambda item: item.k)
        assert newest_item.status == 200, (newest_item.aeui, newest_item.body)
        # Once a report is acknowledged, every older one sent afterwards is superseded.
        for acked in acknowledged:
            for older in sent:
                if older.k < acked.k and older.started > acked.answered:
                    assert older.status == 409, (older.aeui, older.k, acked.k, older.body)
        expected[endpoint_id_for(sent[0].aeui)] = location_id(newest_item.address)

    # The carrier's record of every device is its newest acknowledged report: at once, or
    # after one periodic check for a write that a killed replica left half done.
    state: dict[str, Any] = {}

    def converged() -> bool:
        nonlocal state
        state = httpx.get(f"{sim.base}/_sim/state", timeout=5, trust_env=False).json()
        endpoints = state["endpoints"]
        return all(
            endpoints.get(eid, {}).get("locationId") == lid
            and endpoints[eid].get("callerName") == CALLER
            for eid, lid in expected.items()
        )

    checking = time.monotonic()
    try:
        converged_at = wait_until(
            converged, RECONCILE_INTERVAL + 5, "the carrier to hold the newest reports"
        )
    except AssertionError:
        stale = {
            eid: (state["endpoints"].get(eid, {}).get("locationId"), lid)
            for eid, lid in expected.items()
            if state["endpoints"].get(eid, {}).get("locationId") != lid
        }
        raise AssertionError(f"stale at the carrier (held, expected): {stale}") from None
    print(f"converged {converged_at - checking:.2f} s after the checks began")

    # The ledger's history (shared by both replicas) never goes back in observedAt.
    with admin_client(a.base) as http:
        for device in by_device:
            answer = http.get(f"/v1/devices/replica-{device}/history", params={"limit": 200})
            assert answer.status_code == 200, answer.text
            # Applied by a report, or repaired by a periodic check (a write the killed
            # replica left half done): either is what the carrier was given.
            applied = [
                e
                for e in reversed(answer.json()["entries"])
                if e["kind"] in ("applied", "repaired")
            ]
            history = [e["observedAt"] for e in applied]
            assert applied and history == sorted(history), (device, history)
            assert applied[-1]["toLocationId"] == expected[endpoint_id_for(f"replica-{device}")]


# -- 2. a late write, repaired by a fresh replica after the one that sent it died ------------

REPORT_DEADLINE = 1.0
HOLD = 6 * REPORT_DEADLINE
LATE_INTERVAL = 1.0
REPAIR_BOUND = LATE_INTERVAL + 2.0
FAULT_RATE = 0.01
#: The held call's index is chosen in this range; no other call is faulted for CLEAR calls.
FIRST_FAULT = (20, 60)
CLEAR = 400


def fault_schedule() -> tuple[int, int]:
    """A seed for the simulator whose first fault is call number ``f`` (0-based) in
    ``FIRST_FAULT``, with no other fault for ``CLEAR`` calls after it; and ``f``.

    Drawn with the simulator's own picker, so it is what the simulator process will do
    (every seed-API call that passes authentication draws once).
    """
    low, high = FIRST_FAULT
    for seed in range(1_000_000):
        config = SimulatorConfig(fault_rate=FAULT_RATE, fault_kinds=("timeout",), seed=seed)
        simulator = Simulator(config)
        faults = [simulator._pick_fault(config) is not None for _ in range(high + CLEAR + 1)]
        if True not in faults:
            continue
        first = faults.index(True)
        if low <= first < high and not any(faults[first + 1 : first + 1 + CLEAR]):
            return seed, first
    raise AssertionError("no seed found")  # pragma: no cover


async def create_location(sim_base: str, address: str) -> None:
    """A location created at the carrier directly (a seed-API call, as any other)."""
    normalized = normalize(address).address
    async with BandwidthClient(
        f"{sim_base}/api", SANDBOX_ACCOUNT_ID, SANDBOX_USERNAME, SANDBOX_PASSWORD
    ) as carrier:
        await carrier.create_location(Location(address=normalized))


def test_a_late_write_is_repaired_by_a_fresh_replica(
    tmp_path: Path, database: str, processes: list[Proc]
) -> None:
    seed, held_index = fault_schedule()
    sim = procs.simulator(
        tmp_path,
        *("--fault-rate", str(FAULT_RATE), "--fault-kinds", "timeout"),
        *("--timeout-hold", str(HOLD), "--seed", str(seed)),
    )
    processes.append(sim.start())
    settings = {
        # One attempt, cut by the report's deadline: the write is abandoned, not retried.
        "GATEWAY_UPSTREAM_TIMEOUT": "3",
        "GATEWAY_UPSTREAM_DEADLINE": "4",
        "GATEWAY_REPORT_DEADLINE": str(REPORT_DEADLINE),
    }
    # A makes no periodic checks: the only carrier calls before the held one are the test's.
    a = procs.replica(
        "a",
        tmp_path,
        procs.gateway_environ(sim.port, database, **settings, GATEWAY_RECONCILE_INTERVAL="0"),
    )
    processes.append(a.start())
    sim.wait_ready()
    # The simulator builds its ZIP index on its first address check (a second or so): not
    # in a report with a one-second deadline.
    asyncio.run(create_location(sim.base, PLACES[4]))
    a.wait_ready()
    device, x, y = "late-1", PLACES[0], PLACES[1]
    endpoint = endpoint_id_for(device)

    def calls(since: int = 0) -> list[dict[str, Any]]:
        answer = httpx.get(f"{sim.base}/_sim/calls?since={since}", timeout=5, trust_env=False)
        found: list[dict[str, Any]] = answer.json()
        return found

    def held_at() -> str:
        state = httpx.get(f"{sim.base}/_sim/state", timeout=5, trust_env=False).json()
        return str(state["endpoints"][endpoint]["locationId"])

    with admin_client(a.base) as http:
        # The device is at X; another device is at Y, so the move's only call is the write.
        first = http.post("/v1/location-reports", json=report(device, x, 0))
        assert first.status_code == 200, first.text
        other = http.post("/v1/location-reports", json=report("late-2", y, 0))
        assert other.status_code == 200, other.text
        setup = calls()
        assert not any(c["fault"] for c in setup), setup
        assert len(setup) < held_index, (len(setup), held_index)
        # Harmless reads until the next call is the one the carrier will hold.
        with httpx.Client(
            auth=(SANDBOX_USERNAME, SANDBOX_PASSWORD), timeout=5, trust_env=False
        ) as carrier:
            for _ in range(held_index - len(setup)):
                listed = carrier.get(
                    f"{sim.base}/api/accounts/{SANDBOX_ACCOUNT_ID}/e911s/locations"
                )
                assert listed.status_code == 200, listed.text
        assert len(calls()) == held_index

        # The move to Y: its endpoint write is held past the report's deadline.
        moved = http.post("/v1/location-reports", json=report(device, y, 10))
        assert moved.status_code in (503, 504), moved.text
        held = calls(held_index)[0]
        assert held["operation"] == "updateEndpoint" and held["id"] == endpoint, held
        assert held["fault"] == "timeout" and held["status"] is None, held

        # Replica B starts now (so its periodic checks' calls all come after the held one):
        # A's settings and database, with short periodic checks.
        b = procs.replica(
            "b",
            tmp_path,
            procs.gateway_environ(
                sim.port,
                database,
                **settings,
                GATEWAY_RECONCILE_INTERVAL=str(LATE_INTERVAL),
                GATEWAY_RECONCILE_TICK="0.2",
            ),
        )
        processes.append(b.start())

        # The carrier is healthy again: the device moves back to X via A, acknowledged.
        back = http.post("/v1/location-reports", json=report(device, x, 20))
        assert back.status_code == 200, back.text
        assert back.json()["locationId"] == location_id(x)
        assert held_at() == location_id(x)

    # A dies before the held write lands: nobody is watching that write any more.
    a.kill()
    assert calls(held_index)[0]["status"] is None, "the held write landed before A was killed"
    b.wait_ready()
    b_ready = time.monotonic()

    # The held write lands, and puts the device back at Y...
    before_landing = time.monotonic()
    landed: dict[str, Any] = {}

    def has_landed() -> bool:
        nonlocal before_landing
        polled = time.monotonic()
        seen = calls(held["seq"] - 1)
        if seen[0]["status"] is None:
            before_landing = polled
            return False
        landed.update(seen[0], last_seq=seen[-1]["seq"])
        return True

    wait_until(has_landed, HOLD + 2, "the held write to land")
    assert landed["applied"] and landed["status"] == 200, landed
    regressed_seen = held_at() == location_id(y)
    # Measured from the landing; on a machine so slow that B came up only after it, from
    # when B did (no replica could repair anything before).
    since = max(before_landing, b_ready)

    # ...and B's periodic check repairs it within the bound.
    def repaired() -> bool:
        after = [
            c
            for c in calls(landed["last_seq"])
            if c["operation"] == "updateEndpoint" and c["id"] == endpoint and c["status"] == 200
        ]
        return bool(after) and held_at() == location_id(x)

    done = wait_until(repaired, REPAIR_BOUND + 3, "the repair")
    took = done - since
    late_start = f", B up {b_ready - before_landing:.2f} s later" if since > before_landing else ""
    seen = "seen" if regressed_seen else "not seen"
    print(f"\nlate write: repaired {took:.2f} s after it landed{late_start} (regression {seen})")
    assert took <= REPAIR_BOUND, f"repaired {took:.2f} s after the late write landed{late_start}"

    with admin_client(b.base) as http:
        metrics = http.get("/metrics").text
        where = http.get(f"/v1/devices/{device}/location")
    repairs = procs.metric_samples(metrics, "dlr_reconcile_repairs_total")
    assert repairs.get('{reason="regressed"}') == 1.0, repairs
    assert where.status_code == 200 and where.json()["locationId"] == location_id(x), where.text
    # Nothing but that one write was ever held.
    assert [c["seq"] for c in calls() if c["fault"]] == [held["seq"]]


# -- 3. a repair decided on a stale read, landing after a newer acknowledged report ----------

RACE_LATENCY_MS = 300
RACE_INTERVAL = 4.0
#: With the check the fix adds, a re-read and a write (each one latency) after the stale one.
RACE_BOUND = 2.0


async def put_endpoint(sim_base: str, aeui: str, location: str) -> None:
    """The device's endpoint moved to ``location`` behind the gateway's back (a late write)."""
    endpoint = endpoint_id_for(aeui)
    async with BandwidthClient(
        f"{sim_base}/api", SANDBOX_ACCOUNT_ID, SANDBOX_USERNAME, SANDBOX_PASSWORD
    ) as carrier:
        record = Endpoint(endpoint, aeui, CALLER, location, phone_of(aeui))
        await carrier.update_endpoint(endpoint, record)


def test_a_stale_repair_landing_after_a_newer_report_is_noticed(
    tmp_path: Path, database: str, processes: list[Proc]
) -> None:
    sim = procs.simulator(tmp_path, "--latency-ms", str(RACE_LATENCY_MS))
    processes.append(sim.start())
    # R checks each device every RACE_INTERVAL seconds; W serves the reports and checks none.
    checker = procs.replica(
        "checker",
        tmp_path,
        procs.gateway_environ(
            sim.port,
            database,
            GATEWAY_RECONCILE_INTERVAL=str(RACE_INTERVAL),
            GATEWAY_RECONCILE_TICK="0.1",
        ),
    )
    writer = procs.replica(
        "writer",
        tmp_path,
        procs.gateway_environ(sim.port, database, GATEWAY_RECONCILE_INTERVAL="0"),
    )
    processes += [checker.start(), writer.start()]
    for proc in (sim, checker, writer):
        proc.wait_ready()
    device, endpoint = "race-1", endpoint_id_for("race-1")
    p0, p1, p2 = (location_id(place) for place in PLACES[:3])
    names = {p0: "P0", p1: "P1", p2: "P2"}

    def held() -> str:
        state = httpx.get(f"{sim.base}/_sim/state", timeout=5, trust_env=False).json()
        return names.get(state["endpoints"][endpoint]["locationId"], "?")

    with admin_client(writer.base) as http:

        async def setup() -> list[int]:
            # The device at P0; P1 and P2 known to the carrier and to the writer.
            async with httpx.AsyncClient(
                base_url=writer.base,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=15,
                trust_env=False,
            ) as client:
                answers = await asyncio.gather(
                    client.post("/v1/location-reports", json=report(device, PLACES[0], 0)),
                    client.post("/v1/location-reports", json=report("race-2", PLACES[1], 0)),
                    client.post("/v1/location-reports", json=report("race-3", PLACES[2], 0)),
                )
            return [answer.status_code for answer in answers]

        assert asyncio.run(setup()) == [200, 200, 200]
        # Behind the gateway's back, the carrier now holds the device at P1.
        asyncio.run(put_endpoint(sim.base, device, p1))
        since = httpx.get(f"{sim.base}/_sim/calls", timeout=5, trust_env=False).json()[-1]["seq"]

        # The checker's periodic check reads the device (P1; the ledger says P0: it will
        # write P0). While that read is out, the device moves to P2 through the writer.
        def checking() -> bool:
            calls = httpx.get(
                f"{sim.base}/_sim/calls?since={since}", timeout=5, trust_env=False
            ).json()
            return any(c["operation"] == "getEndpoint" and c["id"] == endpoint for c in calls)

        deadline = time.monotonic() + RACE_INTERVAL + 3
        while not checking():  # polled tightly: the read is out for RACE_LATENCY_MS
            assert time.monotonic() < deadline, "the device was never checked"
            time.sleep(0.01)
        moved = http.post("/v1/location-reports", json=report(device, PLACES[2], 10))
        assert moved.status_code == 200 and moved.json()["locationId"] == p2, moved.text
        acknowledged = time.monotonic()

    # The check's write of P0 lands after the move's: the carrier holds the older binding.
    seen = []
    while time.monotonic() - acknowledged < RACE_BOUND:
        seen.append(held())
        time.sleep(0.02)
    if "P0" not in seen:
        pytest.skip(f"the race did not happen this time: the carrier held {set(seen)}")
    # What the design promises: the newest acknowledged report is what the carrier holds,
    # soon (here: one more read and write), not an interval later.
    assert held() == "P2", f"an interval after an acknowledged move, the carrier holds {held()}"
