"""Load generators: wrk (when installed) and an asyncio one; open-loop and batch drivers.

Every loop here is bounded in both time and request count.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http import Answer, Pool, ProtocolError, encode_request

#: No load phase sends more than this many requests, whatever its duration.
MAX_REQUESTS = 5_000_000


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class LoadResult:
    """One closed-loop run: how many requests completed in how long, and what it cost."""

    generator: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    non_2xx: int
    errors: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    #: The load generator's CPU time over the run's wall time (1.0 = one core busy).
    generator_cpu_share: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    #: The server's CPU time per completed request, microseconds (set by the runner).
    server_cpu_us_per_request: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "connections": self.connections,
            "threads": self.threads,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "generator_cpu_share": (
                round(self.generator_cpu_share, 3) if self.generator_cpu_share is not None else None
            ),
            "statuses": self.statuses,
            "server_cpu_us_per_request": (
                round(self.server_cpu_us_per_request, 1)
                if self.server_cpu_us_per_request is not None
                else None
            ),
        }


# -- wrk ---------------------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "not installed"
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """The numbers of wrk's report (``--latency``)."""
    found: dict[str, Any] = {"non_2xx": 0, "errors": 0, "latency_ms": {}}
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if match:
        found["requests"] = int(match.group(1))
        found["duration_s"] = _duration_ms(match.group(2) + match.group(3)) / 1000
    match = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    if match:
        found["non_2xx"] = int(match.group(1))
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if match:
        found["errors"] = sum(int(g) for g in match.groups())
    for q, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE):
        found["latency_ms"][f"p{q}"] = _duration_ms(value)
    return found


async def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    duration_s: float,
) -> LoadResult:
    """One wrk run, and wrk's CPU share (its rusage over the run's wall time).

    Cancelling it (Ctrl-C) kills wrk at once.
    """
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed")
    argv = [
        path,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    before = os.times()
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        # wrk stops itself after -d; the bound only guards against a hung wrk.
        out, err = await asyncio.wait_for(process.communicate(), duration_s + 60)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    wall = time.monotonic() - started
    after = os.times()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr or stdout}")
    parsed = parse_wrk(stdout)
    if "requests" not in parsed:
        raise RuntimeError(f"cannot read wrk's output:\n{stdout}\n{stderr}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return LoadResult(
        generator="wrk",
        connections=connections,
        threads=threads,
        duration_s=parsed["duration_s"],
        requests=parsed["requests"],
        non_2xx=parsed["non_2xx"],
        errors=parsed["errors"],
        latency_ms=parsed["latency_ms"],
        generator_cpu_share=cpu / wall if wall > 0 else None,
        statuses={},
    )


# -- asyncio -------------------------------------------------------------------------------------


async def closed_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    connections: int,
    duration_s: float,
    max_requests: int = MAX_REQUESTS,
) -> LoadResult:
    """``connections`` workers send ``make(i)`` back to back for ``duration_s``.

    Its own CPU cost is measured (process CPU time over wall time) and reported: on a small
    machine it competes with the server for cores.
    """
    pool = Pool(host, port)
    counter = iter(range(max_requests))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration_s

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() >= deadline:
                return
            request = make(i)
            t0 = time.perf_counter()
            try:
                answer = await pool.send(request)
            except (ProtocolError, OSError, TimeoutError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[answer.status] += 1

    cpu0 = time.process_time()
    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu0
        await pool.close()
    done = sum(statuses.values())
    return LoadResult(
        generator="asyncio",
        connections=connections,
        threads=1,
        duration_s=wall,
        requests=done,
        non_2xx=sum(n for s, n in statuses.items() if not 200 <= s < 400),
        errors=errors,
        latency_ms={f"p{q}": percentile(latencies, q / 100) for q in (50, 75, 90, 99)},
        generator_cpu_share=cpu / wall if wall > 0 else None,
        statuses={str(s): n for s, n in sorted(statuses.items())},
    )


@dataclass(frozen=True, slots=True)
class Timed:
    """One request of an open-loop run: when it left, when its answer was read."""

    index: int
    start: float
    end: float
    status: int
    body: bytes


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    timeout_s: float,
) -> list[Timed]:
    """Send ``requests`` at ``rate`` per second whatever the answers' pace (open loop).

    Times are ``time.monotonic()`` (the clock the simulator's timings use). The generator's
    garbage collector is paused while they are in flight: a full collection of the bench's
    own heap took 190-215 ms, timed as the gateway's latency of every request then open
    (the query phase's tail: docs/benchmarks.md).
    """
    with _collector_paused():
        return await _open_loop(host, port, requests, rate=rate, timeout_s=timeout_s)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _open_loop(
    host: str, port: int, requests: Sequence[bytes], *, rate: float, timeout_s: float
) -> list[Timed]:
    pool = Pool(host, port)
    results: list[Timed] = []
    loop_start = time.monotonic() + 0.05
    hard_stop = loop_start + len(requests) / rate + timeout_s

    async def one(index: int, request: bytes) -> None:
        t0 = time.monotonic()
        try:
            answer = await pool.send(request)
        except (ProtocolError, OSError, TimeoutError) as exc:
            answer = Answer(-1, repr(exc).encode())
        results.append(Timed(index, t0, time.monotonic(), answer.status, answer.body))

    tasks: list[asyncio.Task[None]] = []
    try:
        for index, request in enumerate(requests):
            target = loop_start + index / rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() > hard_stop:
                break
            tasks.append(asyncio.create_task(one(index, request)))
        remaining = max(0.1, hard_stop - time.monotonic())
        await asyncio.wait_for(asyncio.gather(*tasks), remaining)
    finally:
        for task in tasks:
            task.cancel()
        await pool.close()
    results.sort(key=lambda t: t.index)
    return results


async def send_all(
    host: str,
    port: int,
    requests: Iterable[bytes],
    *,
    concurrency: int,
    timeout_s: float,
    progress_every_s: float = 0.0,
) -> tuple[Counter[int], list[bytes]]:
    """Send every request, ``concurrency`` at a time; status counts and a few failed bodies.

    With ``progress_every_s``, the counts so far go to stderr that often.
    """
    pool = Pool(host, port)
    iterator = iter(requests)
    statuses: Counter[int] = Counter()
    failures: list[bytes] = []
    deadline = time.monotonic() + timeout_s

    async def worker() -> None:
        for request in iterator:
            if time.monotonic() > deadline:
                statuses[-2] += 1  # not sent: the phase ran out of time
                continue
            try:
                answer = await pool.send(request)
            except (ProtocolError, OSError, TimeoutError) as exc:
                statuses[-1] += 1
                if len(failures) < 5:
                    failures.append(repr(exc).encode())
                continue
            statuses[answer.status] += 1
            if answer.status != 200 and len(failures) < 5:
                failures.append(answer.body[:500])

    async def progress() -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(progress_every_s)
            done = sum(statuses.values())
            rate = done / (time.monotonic() - started)
            print(f"[bench]   {done} sent, {rate:.0f}/s, {dict(statuses)}", file=sys.stderr)

    reporter = asyncio.create_task(progress()) if progress_every_s > 0 else None
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if reporter is not None:
            reporter.cancel()
        await pool.close()
    return statuses, failures


def report_request(host: str, body: bytes, token: str) -> bytes:
    """A pre-encoded ``POST /v1/location-reports``."""
    return encode_request(
        "POST",
        "/v1/location-reports",
        host,
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
