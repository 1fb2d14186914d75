"""``python -m bench.imports``: ``dlr-gateway import devices`` of a fleet against the simulator.

Starts the simulator on loopback with the bench's carrier latency, writes a devices CSV
(``--rows`` devices over ``--sites`` addresses), runs the real command against a fresh SQLite
file and reports rows per second and carrier calls per row; then runs the same file again
(the idempotent run: no carrier call expected). The baseline, in the same invocation, is the
carrier's own floor at this concurrency: every row's unavoidable calls (a new location
once per site, an endpoint per device) back to back, ``concurrency`` at a time, and no
faster than ``--rate-limit`` allows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.procs import free_port
from bench.workload import AddressBook, DeviceNames
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME

LOOPBACK = "127.0.0.1"


def _csv(rows: int, sites: int) -> bytes:
    book = AddressBook()
    aeuis = DeviceNames().fresh("import", rows)
    lines = ["AEUI,CallerName,CallbackNumber,Address"]
    for i in range(rows):
        aeui = aeuis[i]
        # A distinct callback number per device: 202-2XX-XXXX, never an N11 exchange.
        number = f"+1202{200 + i // 10_000:03d}{i % 10_000:04d}"
        lines.append(f'{aeui},USER {i},{number},"{book.address(i % sites)}"')
    return ("\n".join(lines) + "\n").encode()


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.05)


def _calls(base: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{base}/_sim/calls", timeout=60.0, trust_env=False)
    return list(answer.json())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000, help="devices (10000)")
    parser.add_argument("--sites", type=int, default=1_000, help="distinct addresses (1000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="carrier latency (20)")
    parser.add_argument("--concurrency", type=int, default=8, help="rows at a time (8)")
    parser.add_argument(
        "--rate-limit", type=float, default=0.0, help="the carrier's calls per second (0: none)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-imports.json"))
    args = parser.parse_args(argv)
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "BANDWIDTH_"))}
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "simulator",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--latency-ms",
            str(args.latency_ms),
            "--rate-limit",
            str(args.rate_limit),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"{base}/_sim/config")
        with tempfile.TemporaryDirectory(prefix="dlr-bench-import-") as tmp:
            csv_file = Path(tmp) / "fleet.csv"
            csv_file.write_bytes(_csv(args.rows, args.sites))
            env |= {
                "NO_PROXY": LOOPBACK,
                "BANDWIDTH_BASE_URL": f"{base}/api",
                "BANDWIDTH_ACCOUNT_ID": SANDBOX_ACCOUNT_ID,
                "BANDWIDTH_USERNAME": SANDBOX_USERNAME,
                "BANDWIDTH_PASSWORD": SANDBOX_PASSWORD,
                "GATEWAY_ADMIN_KEYS": "bench-import-admin-key-0123456789",
                "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/state.db",
                "GATEWAY_IMPORT_CONCURRENCY": str(args.concurrency),
            }
            figures: dict[str, object] = {
                "rows": args.rows,
                "sites": args.sites,
                "latency_ms": args.latency_ms,
                "concurrency": args.concurrency,
                "rate_limit": args.rate_limit,
            }
            for run in ("first", "again"):
                before = len(_calls(base))
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "gateway", "import", "devices", str(csv_file)],
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    print(done.stdout + done.stderr, file=sys.stderr)
                    return 1
                made = _calls(base)[before:]
                # Calls the rate limit refused (429) are counted apart: they did no work.
                refused = sum(1 for c in made if c.get("status") == 429)
                calls = len(made) - refused
                figures[run] = {
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(args.rows / seconds, 1),
                    "carrier_calls": calls,
                    "carrier_calls_per_row": round(calls / args.rows, 3),
                    "refused_429": refused,
                }
            floor_calls = args.rows + args.sites
            floor_seconds = floor_calls * args.latency_ms / 1000 / args.concurrency
            if args.rate_limit > 0:
                floor_seconds = max(floor_seconds, floor_calls / args.rate_limit)
            figures["floor"] = {
                "carrier_calls_per_row": round(floor_calls / args.rows, 3),
                "rows_per_second": round(args.rows / floor_seconds, 1),
            }
            first = figures["first"]
            assert isinstance(first, dict)
            figures["share_of_floor_rate"] = round(
                first["rows_per_second"] / (args.rows / floor_seconds), 3
            )
    finally:
        sim.terminate()
        sim.wait(10)
    text = json.dumps(figures, indent=2)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
