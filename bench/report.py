"""Markdown tables from ``bench-results.json`` files, for ``docs/benchmarks.md``.

    python -m bench.report bench-results.json [more.json ...]

One column per file, one row per figure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROWS: tuple[tuple[str, str], ...] = (
    ("baseline_rps", "baseline req/s"),
    ("unchanged_rps", "unchanged reports/s"),
    ("unchanged_vs_baseline_ratio", "unchanged / baseline (target >= 0.30)"),
    ("changed_p50_ms", "changed p50 ms"),
    ("changed_p99_ms", "changed p99 ms"),
    ("upstream_p50_ms", "upstream p50 ms"),
    ("changed_overhead_p50_ms", "changed overhead p50 ms"),
    ("changed_overhead_p99_ms", "changed overhead p99 ms (target <= 10)"),
    ("changed_rps", "changed reports/s (closed loop)"),
    ("baseline_cpu_us_per_request", "baseline CPU us/request"),
    ("unchanged_cpu_us_per_request", "unchanged CPU us/report"),
    ("unchanged_vs_baseline_cpu_ratio", "baseline CPU / unchanged CPU"),
    ("changed_cpu_us_per_request", "move CPU us/report"),
    ("new_device_cpu_us_per_report", "new device CPU us/report"),
    ("geocoder_calls_per_distinct_address", "geocoder calls per distinct address"),
    ("peak_rss_mb", "peak RSS MiB"),
    ("emergency_query_p50_ms", "emergency query p50 ms (500/s)"),
    ("emergency_query_p99_ms", "emergency query p99 ms (target <= 2)"),
    ("emergency_query_rps", "emergency queries/s"),
    ("emergency_query_cpu_us_per_request", "emergency query CPU us/query"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def column(results: dict[str, Any]) -> dict[str, str]:
    out = {name: _fmt(results.get(name)) for name, _ in ROWS}
    calls = results.get("upstream_calls_per_report") or {}
    out["upstream_calls_per_report"] = " / ".join(
        _fmt(calls.get(k)) for k in ("unchanged", "move_known", "move_new", "new_device")
    )
    details = results.get("details", {})
    memory = details.get("memory", {})
    out["devices"] = _fmt(memory.get("devices_registered_in_phase"))
    busy = details.get("other_processes_cores", {})
    out["busy"] = _fmt(max(busy.values())) if busy else "-"
    env = results.get("environment", {})
    server = env.get("server", {})
    out["server"] = f"{server.get('name', '?')} {server.get('version', '')}".strip()
    out["loadgen"] = str(env.get("load_generator", {}).get("name", "?"))
    out["mode"] = str(results.get("plan", {}).get("mode", "?"))
    return out


def table(files: Sequence[Path]) -> str:
    columns = [column(json.loads(f.read_text())) for f in files]
    head = "| figure | " + " | ".join(f"{c['mode']}, {c['server']}" for c in columns) + " |"
    lines = [head, "| --- |" + " ---: |" * len(columns)]
    rows = [
        *ROWS[:14],
        ("upstream_calls_per_report", "upstream calls: unchanged / known / new / new device"),
        *ROWS[14:],
        ("devices", "devices registered for peak RSS"),
        ("busy", "CPU cores used by other processes (max)"),
        ("loadgen", "load generator"),
    ]
    for key, label in rows:
        lines.append(f"| {label} | " + " | ".join(c[key] for c in columns) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("files", nargs="+", type=Path)
    print(table(parser.parse_args(argv).files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
