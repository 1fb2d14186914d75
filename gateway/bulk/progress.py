"""Progress of an import: a bar (rich) on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from gateway.bulk.run import Progress


class Lines:
    """``import 1f3c...: 4200/10000 (42%), 310 rows/s, ETA 0:00:19, 0 failed``, every
    ``every`` seconds and at the end (logs, CI, pipes)."""

    def __init__(self, label: str, out: TextIO, every: float = 5.0) -> None:
        self.label = label
        self.out = out
        self.every = every
        self.started = time.monotonic()
        self._last = 0.0
        self._first: int | None = None
        self._state = (0, 0, 0)

    def update(self, done: int, failed: int, total: int) -> None:
        if self._first is None:
            self._first = done
        self._state = (done, failed, total)
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._print()

    def _print(self) -> None:
        done, failed, total = self._state
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (done - (self._first or 0)) / elapsed
        share = 100 * done // total if total else 100
        eta = f"{_clock((total - done) / rate)}" if rate > 0 else "-"
        print(
            f"{self.label}: {done}/{total} ({share}%), {rate:.0f} rows/s, ETA {eta}, "
            f"{failed} failed",
            file=self.out,
            flush=True,
        )

    def close(self) -> None:
        self._print()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Bar:
    """A rich progress bar: done/total, rate, ETA and failures so far."""

    def __init__(self, label: str, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._rich: Any = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=Console(file=out),
            transient=False,
        )
        self._task = self._rich.add_task(label, total=None, rate="-", failed=0)
        self._rich.start()
        self.started = time.monotonic()
        self._first: int | None = None

    def update(self, done: int, failed: int, total: int) -> None:
        if self._first is None:
            self._first = done
        rate = (done - self._first) / max(time.monotonic() - self.started, 1e-9)
        self._rich.update(
            self._task, completed=done, total=total, failed=failed, rate=f"{rate:.0f}"
        )

    def close(self) -> None:
        self._rich.stop()


def for_terminal(label: str, out: TextIO | None = None) -> Progress:
    """A bar when ``out`` (standard error) is a terminal and rich is installed, plain lines
    otherwise."""
    out = sys.stderr if out is None else out  # the one in use now, not at import
    if out.isatty():
        try:
            return Bar(label, out)
        except ImportError:
            pass
    return Lines(label, out)
