"""Deliveries sent by a process of the gateway's own (``GATEWAY_EVENT_DELIVERY=process``, the
default with a database file): real ``dlr-gateway serve`` replicas, a real receiver."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from gateway.events.delivery import DeliveryWorker, MetricsReport
from gateway.events.emitter import Emitter
from gateway.events.model import EMERGENCY_CALL, Event
from gateway.events.process import DeliveryProcess, PipeReport
from gateway.events.service import Events
from gateway.metrics import Metrics
from gateway.settings import Settings, SettingsError
from gateway.store import open_store
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from tests.events.receiver import Receiver
from tests.events.served import QUERY_PASSWORD, QUERY_USER, admin_client, events_environ
from tests.events.test_delivery import until
from tests.procs import (
    Proc,
    metric_samples,
    replica,
    simulator,
    stop_all,
)

CHILD_MARK = b"gateway.events.process"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _delivery_pids(pid: int) -> list[int]:
    found = []
    for kid in _children(pid):
        try:
            if CHILD_MARK in Path(f"/proc/{kid}/cmdline").read_bytes():
                found.append(kid)
        except OSError:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; its parent (this test's gateway, killed) never reaped it


def _wait(condition: object, timeout: float, message: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Proc, Receiver]]:
    receiver = Receiver().up()
    sim = simulator(tmp_path).start()
    env = events_environ(sim.port, tmp_path, GATEWAY_EVENT_DELIVERY_TIMEOUT="1")
    gw = replica("gateway", tmp_path, env)
    try:
        sim.wait_ready()
        gw.start().wait_ready()
        with admin_client(gw.base) as admin:
            hook = admin.post(
                "/v1/webhooks", json={"url": receiver.url, "eventTypes": ["emergency_call"]}
            )
            assert hook.status_code == 201, hook.text
            receiver.secret = hook.json()["secret"]
        yield gw, receiver
    finally:
        stop_all([gw, sim])
        receiver.down()


def _call(gw: Proc, n: int) -> None:
    with admin_client(gw.base) as admin:
        answer = admin.get(
            "/v1/emergency-calls/location",
            params={"to": "911", "from": f"+1303555012{n}"},
            auth=(QUERY_USER, QUERY_PASSWORD),
        )
    assert answer.status_code == 404  # an unknown caller: an emergency call all the same


def _started(gw: Proc, receiver: Receiver) -> tuple[int, int]:
    """The first call's delivery starts the delivery process; once it is delivered, the
    gateway's process id and its delivery process's."""
    assert gw.child is not None
    pid = gw.child.pid
    _call(gw, 9)
    _wait(lambda: _delivery_pids(pid), 10, "no delivery process")
    receiver.wait_for(1, timeout=10)
    (child,) = _delivery_pids(pid)
    return pid, child


def _delivered(gw: Proc) -> float:
    text = httpx.get(gw.base + "/metrics", trust_env=False).text
    samples = metric_samples(text, "dlr_event_deliveries_total")
    return sum(v for k, v in samples.items() if 'outcome="delivered"' in k)


def test_a_child_process_delivers_and_the_gateway_counts_it(
    stack: tuple[Proc, Receiver],
) -> None:
    gw, receiver = stack
    assert gw.child is not None
    pid = gw.child.pid
    time.sleep(1.0)
    assert _delivery_pids(pid) == []  # nothing to deliver yet: no child
    _call(gw, 0)
    _wait(lambda: _delivery_pids(pid), 10, "no delivery process")
    receiver.wait_for(1, timeout=10)
    assert receiver.unverified == 0
    # Every thread of the child (its loop's, its store's) is in the idle scheduling class;
    # the gateway stays in the class it was started in (the test's own: under ``chrt
    # --idle 0`` that is the idle class too, and then only the child's part is shown).
    (child,) = _delivery_pids(pid)
    for task in Path(f"/proc/{child}/task").iterdir():
        assert os.sched_getscheduler(int(task.name)) == os.SCHED_IDLE
    assert os.sched_getscheduler(pid) == os.sched_getscheduler(0)
    (event,) = receiver.events().values()
    assert event["type"] == "emergency_call"
    # The child's outcome is in the serving process's metrics.
    _wait(lambda: _delivered(gw) == 1, 10, "the delivery is not in /metrics")


def test_a_killed_delivery_process_is_replaced_and_nothing_is_lost(
    stack: tuple[Proc, Receiver],
) -> None:
    gw, receiver = stack
    pid, first = _started(gw, receiver)
    receiver.down()  # the first call's delivery waits in the outbox, retried
    _call(gw, 1)
    os.kill(first, signal.SIGKILL)
    _wait(lambda: _delivery_pids(pid) not in ([], [first]), 15, "not started again")
    receiver.up()
    _call(gw, 2)
    receiver.wait_for(3, timeout=30)
    assert receiver.unverified == 0
    assert "delivery process exited; starting another" in gw.tail(200_000)


def test_the_delivery_process_ends_with_a_killed_gateway(stack: tuple[Proc, Receiver]) -> None:
    gw, receiver = stack
    _, child = _started(gw, receiver)
    gw.kill()  # SIGKILL: no shutdown, but the pipe closes with the process
    _wait(lambda: _gone(child), 10, "the delivery process outlived the gateway")


def test_a_stopped_gateway_stops_its_delivery_process(stack: tuple[Proc, Receiver]) -> None:
    gw, receiver = stack
    _, child = _started(gw, receiver)
    gw.child.send_signal(signal.SIGTERM)
    gw.child.send_signal(signal.SIGTERM)  # the second skips the drain delay
    assert gw.child.wait(15) == 0
    assert _gone(child)
    assert "Traceback" not in gw.tail(200_000)


def test_the_child_refuses_a_pipe_without_settings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.events.process"],
        input=b"\x00\x00\x00\x00\x00\x00\x00\x05hello",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"no settings from the serving process" in done.stderr


def test_an_in_memory_store_delivers_in_the_serving_process(tmp_path: Path) -> None:
    settings = Settings.from_environ({"GATEWAY_EVENT_DELIVERY": "process"}, env_file=None)
    chosen = Settings.from_environ({"GATEWAY_EVENT_DELIVERY": "inline"}, env_file=None)

    async def main() -> None:
        memory = await open_store("sqlite+aiosqlite:///:memory:", create=True)
        disk = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", create=True)
        try:
            assert isinstance(memory, SqlStateStore) and isinstance(disk, SqlStateStore)
            # No other process can open an in-memory database.
            inline = Events.build(settings, memory, Metrics(), "r")
            assert isinstance(inline.worker, DeliveryWorker)
            child = Events.build(settings, disk, Metrics(), "r").worker
            assert isinstance(child, DeliveryProcess)
            assert child.database_url == f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
            assert isinstance(Events.build(chosen, disk, Metrics(), "r").worker, DeliveryWorker)
        finally:
            await memory.close()
            await disk.close()

    asyncio.run(main())


def test_the_process_mode_is_a_setting() -> None:
    assert Settings.from_environ({}, env_file=None).event_delivery == "process"
    with pytest.raises(SettingsError, match="GATEWAY_EVENT_DELIVERY"):
        Settings.from_environ({"GATEWAY_EVENT_DELIVERY": "thread"}, env_file=None)


class Recording:
    def __init__(self) -> None:
        self.counted_: list[tuple[str, str, str, int]] = []
        self.backlogs: list[tuple[int, float]] = []

    def counted(self, event_type: str, channel: str, result: str, count: int = 1) -> None:
        self.counted_.append((event_type, channel, result, count))

    def backlog(self, depth: int, oldest: float) -> None:
        self.backlogs.append((depth, oldest))


def _unstarted(report: Recording) -> DeliveryProcess:
    settings = Settings.from_environ({}, env_file=None)
    outbox = cast(OutboxStore, None)  # not read: the process is not started
    return DeliveryProcess(settings, "sqlite+aiosqlite:///x.db", "r", report, outbox)


def test_the_childs_lines_reach_the_report_and_garbage_does_not() -> None:
    report = Recording()
    process = _unstarted(report)
    for line in (
        b'["counted", ["emergency_call", "webhook", "delivered", 2]]\n',
        b'["backlog", [3, 1.5]]\n',
        b"not json\n",
        b'["counted", ["too", "few"]]\n',
        b'["counted", ["emergency_call", "webhook", "delivered"]]\n',
        b'["counted", ["a", "b", "c", 0]]\n',
        b'["counted", ["a", "b", "c", -1]]\n',
        b'["counted", ["a", "b", "c", "3"]]\n',
        b'["counted", ["a", "b", "c", true]]\n',
        b'["counted", ["a", "b", "c", 1e3]]\n',
        b'["counted", ["a", "b", "c", 10001]]\n',
        b'["backlog", "x"]\n',
        b'{"counted": 1}\n',
        b'["unknown", []]\n',
    ):
        process._apply(line)
    assert report.counted_ == [("emergency_call", "webhook", "delivered", 2)]
    assert report.backlogs == []  # the serving process reads the backlog itself


def test_a_batchs_outcomes_travel_as_one_line_a_label_set() -> None:
    async def main() -> bytes:
        out = io.BytesIO()
        report = PipeReport(out)
        for result in ("delivered", "delivered", "retry", "delivered"):
            report.counted("emergency_call", "webhook", result)
        report.counted("test_call", "email", "failed")
        assert out.getvalue() == b""  # written once the batch is counted
        await asyncio.sleep(0)
        return out.getvalue()

    lines = asyncio.run(main()).splitlines(keepends=True)
    assert len(lines) == 3
    received = Recording()
    process = _unstarted(received)
    for line in lines:
        process._apply(line)
    assert sorted(received.counted_) == [
        ("emergency_call", "webhook", "delivered", 3),
        ("emergency_call", "webhook", "retry", 1),
        ("test_call", "email", "failed", 1),
    ]


def test_a_child_that_cannot_run_is_retried_and_the_backlog_still_shows(tmp_path: Path) -> None:
    """The outbox gauges come from the serving process: with no child delivering, pending
    deliveries still show (and their alert can fire)."""
    settings = Settings.from_environ({}, env_file=None)
    metrics = Metrics()
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"

    async def main() -> None:
        store = await open_store(url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            outbox = OutboxStore(store)
            await outbox.add_webhook("wh_1", "https://example.org/h", [EMERGENCY_CALL], "s", None)
            emitter = Emitter(outbox, metrics)
            emitter.start()
            emitter.emit(Event.new(EMERGENCY_CALL, {"n": 1}))
            await emitter.aclose()
            process = DeliveryProcess(
                settings,
                url,
                "r",
                MetricsReport(metrics),
                outbox,
                command=(sys.executable, "-c", "raise SystemExit(3)"),
                restart_delays=(0.05,),
            )
            process.start()
            try:
                await until(lambda: process.starts >= 3)
            finally:
                await process.aclose()
            assert metrics.registry.get_sample_value("dlr_outbox_pending") == 1
        finally:
            await store.close()

    asyncio.run(main())


def test_a_child_that_cannot_open_the_store_says_so_and_is_started_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_environ({}, env_file=None)
    metrics = Metrics()
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    missing = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'g.db'}"

    async def main() -> None:
        store = await open_store(url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            process = DeliveryProcess(
                settings,
                missing,
                "r",
                MetricsReport(metrics),
                OutboxStore(store),
                restart_delays=(0.05,),
            )
            process.start()
            await asyncio.sleep(0.3)
            assert process.starts == 0  # nothing to deliver: not started
            process.set()  # a delivery written
            try:
                await until(lambda: process.starts >= 2, within=60.0)
            finally:
                await process.aclose()
        finally:
            await store.close()

    asyncio.run(main())
    # Logged as a JSON line, as the gateway logs (the store's error in its record).
    err = capfd.readouterr().err
    failed = [line for line in err.splitlines() if '"message":"delivery process failed"' in line]
    assert failed and "StoreUnavailable" in failed[0]
