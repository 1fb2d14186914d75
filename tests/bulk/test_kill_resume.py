"""``dlr-gateway import`` killed with SIGKILL part-way, then resumed: every line applied
exactly once, no carrier write made twice. Real processes on loopback, a SQLite file."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import procs
from tests.bulk.helpers import devices_csv

ROWS = 120


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[procs.Proc]:
    proc = procs.simulator(tmp_path, "--latency-ms", "25").start().wait_ready()
    yield proc
    procs.stop_all([proc])


def _import(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", "devices", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines_recorded(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM import_rows").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_killed_part_way_then_resumed_applies_every_line_once(
    tmp_path: Path, sim: procs.Proc
) -> None:
    db = tmp_path / "state.db"
    env = procs.gateway_environ(
        sim.port, f"sqlite+aiosqlite:///{db}", GATEWAY_IMPORT_CONCURRENCY="4"
    )
    csv_file = tmp_path / "fleet.csv"
    csv_file.write_bytes(devices_csv(ROWS))
    first = _import(env, tmp_path, str(csv_file))
    deadline = time.monotonic() + 60
    while _lines_recorded(db) < ROWS // 4:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.05)
    first.kill()  # SIGKILL: no flush, no shutdown
    output = first.communicate(timeout=10)[0]
    recorded = _lines_recorded(db)
    assert recorded < ROWS, "killed too late to show a resume"
    found = re.search(r"import ([0-9a-f]{16}) ", output)
    assert found, output
    import_id = found[1]

    # Its heartbeat is fresh: as far as anyone can tell it runs elsewhere, and is not taken.
    early = _import(env, tmp_path, str(csv_file), "--resume", import_id)
    output = early.communicate(timeout=120)[0]
    assert early.returncode == 2, output
    assert f"import {import_id} is running" in output and "s from now" in output, output
    assert _lines_recorded(db) == recorded
    with sqlite3.connect(db) as connection:  # STALE_AFTER passes
        connection.execute("UPDATE imports SET updated_at = updated_at - 61000000")
    second = _import(env, tmp_path, str(csv_file), "--resume", import_id)
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    assert f"import {import_id}: done" in output, output
    assert "created" in output

    with sqlite3.connect(db) as connection:
        lines = [r[0] for r in connection.execute("SELECT line FROM import_rows")]
        confirmed = connection.execute("SELECT COUNT(*) FROM devices WHERE confirmed").fetchone()[0]
    assert sorted(lines) == list(range(2, ROWS + 2))  # every line, once
    assert confirmed == ROWS

    calls = httpx.get(f"{sim.base}/_sim/calls", timeout=10, trust_env=False).json()
    landed = Counter(
        (c["operation"], c["id"])
        for c in calls
        if c["method"] in ("POST", "PUT") and c["status"] is not None and c["status"] < 300
    )
    endpoints = {k: n for k, n in landed.items() if k[0] != "createLocation"}
    assert len(endpoints) == ROWS, "every device written"
    assert set(endpoints.values()) == {1}, [k for k, n in endpoints.items() if n > 1]
    assert all(op == "createEndpoint" for op, _ in endpoints)
    locations = {k: n for k, n in landed.items() if k[0] == "createLocation"}
    assert len(locations) == 4 and set(locations.values()) == {1}

    # The same file once more: nothing to do, no carrier call.
    before = len(calls)
    third = _import(env, tmp_path, str(csv_file))
    output = third.communicate(timeout=120)[0]
    assert third.returncode == 0, output
    assert "at most 0 carrier calls" in output
    after = httpx.get(f"{sim.base}/_sim/calls", timeout=10, trust_env=False).json()
    assert len(after) == before


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=procs.clean_environ(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_through_a_running_gateways_admin_api(tmp_path: Path, sim: procs.Proc) -> None:
    env = procs.gateway_environ(
        sim.port, f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", GATEWAY_IMPORT_MAX_BYTES="100000"
    )
    gw = procs.replica("gateway", tmp_path, env).start().wait_ready()
    try:
        remote = ["--url", gw.base, "--key", procs.ADMIN_KEY]
        csv_file = tmp_path / "fleet.csv"
        csv_file.write_bytes(devices_csv(12))
        done = _cli(tmp_path, "import", "devices", str(csv_file), *remote)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "done: 12 created" in done.stdout, done.stdout
        out = tmp_path / "export.csv"
        exported = _cli(tmp_path, "export", "devices", "--out", str(out), *remote)
        assert exported.returncode == 0, exported.stderr
        assert out.read_text().count("\n") == 13
        again = _cli(tmp_path, "import", "devices", str(out), "--dry-run", *remote)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "12 unchanged" in again.stdout and "at most 0 carrier calls" in again.stdout
        bad = tmp_path / "bad.csv"
        bad.write_text("AEUI,CallerName,CallbackNumber,Address\nx-1,,nope,\n")
        refused = _cli(tmp_path, "import", "devices", str(bad), *remote)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        checked = _cli(tmp_path, "import", "devices", str(bad), "--dry-run", *remote)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        report = (tmp_path / "bad.errors.csv").read_text()
        assert "2,CallerName," in report and "2,CallbackNumber," in report
        # Past the gateway's limit (not this shell's): its 413, said, while still sending.
        big = tmp_path / "big.csv"
        big.write_bytes(devices_csv(4000))
        too_big = _cli(tmp_path, "import", "devices", str(big), *remote)
        assert too_big.returncode == 2, too_big.stdout + too_big.stderr
        assert "413" in too_big.stderr and "Traceback" not in too_big.stderr, too_big.stderr
    finally:
        procs.stop_all([gw])
