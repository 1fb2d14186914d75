"""The benchmark harness runs end to end (tiny phases) and writes every figure.

``python -m bench --smoke`` starts the simulator, the gateway and the baseline as real
servers on loopback and runs each phase for about a second: some 12 s on a quiet 2-core
machine, 20-25 s while other test suites share it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

FIGURES = {
    "baseline_rps",
    "unchanged_rps",
    "unchanged_vs_baseline_ratio",
    "changed_p50_ms",
    "changed_p99_ms",
    "upstream_p50_ms",
    "changed_overhead_p50_ms",
    "changed_overhead_p99_ms",
    "upstream_calls_per_report",
    "geocoder_calls_per_distinct_address",
    "peak_rss_mb",
    "faults_success_share",
    "faults_p50_ms",
    "emergency_query_p99_ms",
    "emergency_query_subscribed_p99_ratio",
    "emergency_query_control_p99_ratio",
    "emergency_query_subscribed_cpu_us_per_request",
    "emergency_query_vs_baseline_cpu_ratio",
    "environment",
}


def smoke(tmp_path: Path, *options: str, timeout: float = 180) -> tuple[dict[str, Any], str]:
    """``python -m bench --smoke *options``, which must succeed: its results and its output."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", *options, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results, done.stdout


def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    # The asyncio load generator: wrk may not be installed (CI), and this is the fallback.
    results, stdout = smoke(tmp_path, "--loadgen", "asyncio")
    assert results.keys() >= FIGURES
    # The design's floor: 0 unchanged, 1 move to a known place, 2 to a new one, 3 new device.
    # Tolerance: the gateway's background work (repairs, the reconciler) may add a call or
    # two within a phase of 4 reports; a report kind that costs a call more each time fails.
    floor = {"unchanged": 0, "move_known": 1, "move_new": 2, "new_device": 3}
    calls = results["upstream_calls_per_report"]
    assert calls.keys() == floor.keys()
    for kind, least in floor.items():
        assert least <= calls[kind] <= least + 0.5, (kind, calls)
    for name in FIGURES - {"upstream_calls_per_report", "environment"}:
        value = results[name]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, name
    assert results["faults_500s"] == 0
    env = results["environment"]
    assert env["cpu_count"] >= 1
    assert env["server"]["name"] == "uvicorn"
    assert "unchanged_rps" in stdout


# Slow (~16 s): out of CI; `pytest -m slow` runs it.
@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin splits two CPUs or more")
def test_pin_gives_the_gateway_a_cpu_of_its_own(tmp_path: Path) -> None:
    results, _ = smoke(tmp_path, "--only-query", "--pin")
    mine = sorted(os.sched_getaffinity(0))
    assert results["environment"]["cpus"] == {"gateway": mine[:1], "harness": mine[1:]}
    assert results["plan"]["pinned"] == [mine[:1], mine[1:]]
    assert results["emergency_query_subscribed_p99_ratio"] is not None
