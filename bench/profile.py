"""py-spy on the gateway during a load run, and a summary of where its CPU went.

py-spy samples the running process from outside (no change to the gateway, ~no overhead
with ``--nonblocking``); ``--format raw`` writes collapsed stacks, one line per distinct
stack: ``frame;frame;...;frame COUNT``. Idle samples are left out by py-spy, so shares
here are of the gateway's busy time.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RATE = 250
TOP = 20
_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


@dataclass
class Spy:
    process: subprocess.Popen[bytes]
    output: Path
    log: Path


def start(pid: int, output: Path, duration_s: float | None) -> Spy | None:
    """Start sampling ``pid`` for ``duration_s`` (until ``finish`` when ``None``); ``None``
    when py-spy is not installed."""
    path = shutil.which("py-spy")
    if path is None:
        print("bench: --profile needs py-spy (pip install py-spy); not profiling")
        return None
    log = output.with_suffix(".log")
    with log.open("wb") as sink:
        argv = [path, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"]
        argv += ["--output", str(output), "--nonblocking"]
        if duration_s is not None:
            argv += ["--duration", str(max(1, round(duration_s)))]
        process = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    time.sleep(0.3)  # let it attach before the load starts
    return Spy(process, output, log)


def finish(spy: Spy, timeout_s: float = 60.0, *, stop: bool = False) -> dict[str, Any] | None:
    """Wait for py-spy (``stop``: interrupt it first, as Ctrl-C would), then summarize."""
    if stop and spy.process.poll() is None:
        spy.process.send_signal(signal.SIGINT)
    try:
        spy.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        spy.process.kill()
        spy.process.wait(5)
    if not spy.output.exists():
        return {"error": spy.log.read_text(errors="replace")[-2000:]}
    return summarize(spy.output.read_text())


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``: a function, whatever line it was on."""
    return _FRAME_LINE.sub(")", frame)


def summarize(collapsed: str, top: int = TOP) -> dict[str, Any]:
    """Self and inclusive shares per function, of all busy samples."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        frames = [_function(f) for f in match.group(1).split(";") if f]
        count = int(match.group(2))
        total += count
        if frames:
            self_counts[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "rate_hz": RATE,
        "self_pct": share(self_counts) if total else [],
        "inclusive_pct": share(inclusive) if total else [],
    }


def render(profiles: dict[str, Any]) -> str:
    lines: list[str] = []
    for phase, summary in profiles.items():
        if not summary or "error" in summary:
            lines.append(f"\nprofile {phase}: {summary.get('error') if summary else 'none'}")
            continue
        lines.append(f"\nprofile of the gateway, {phase} run ({summary['samples']} busy samples)")
        lines.append("  self %   function")
        lines += [f"  {pct:6.1f}   {name}" for name, pct in summary["self_pct"][:12]]
        lines.append("  incl %   function")
        lines += [f"  {pct:6.1f}   {name}" for name, pct in summary["inclusive_pct"][:25]]
    return "\n".join(lines)
