"""Subprocesses on loopback: free ports, start, wait until they answer, measure, stop.

Every child gets its own session (so a terminal's Ctrl-C reaches only the harness, which then
stops them in order) and ``PR_SET_PDEATHSIG`` (so a harness killed outright does not leave
servers behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pinned_cpus() -> tuple[frozenset[int], frozenset[int]] | None:
    """``--pin``'s split of this machine's CPUs: (the gateway's, everyone else's).

    The gateway gets the first CPU this process may use, the harness and the other servers
    the rest, as if the load generator and the webhook receiver ran on hosts of their own.
    ``None`` with fewer than two CPUs to split.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


class ServiceError(RuntimeError):
    """A service did not start; the message carries the tail of its log."""


@dataclass
class Service:
    """One server subprocess with its log file."""

    name: str
    argv: Sequence[str]
    port: int
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    #: The CPUs it (and every process and thread it starts) may run on; ``None``: the harness's.
    cpus: frozenset[int] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=self._in_child,  # the harness is single-threaded here
            )
        finally:
            log.close()

    def _in_child(self) -> None:  # pragma: no cover - runs in the child between fork and exec
        _die_with_parent()
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        """Poll ``path`` until it answers (any status below 500)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise ServiceError(
                        f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(path).status_code < 500:
                        return
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"{self.name} did not answer in {timeout:g} s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group twice (the gateway's second signal skips its drain delay,
        uvicorn's skips waiting for idle connections), then SIGKILL what is left."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        for _ in range(2):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            break
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        # Workers (granian) that outlived their parent in the same group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def server_pid(self) -> int:
        """The process that runs the app: the child itself, or its (single) worker."""
        kids = [kid for kid in descendants(self.pid) if not is_helper(kid)]
        return kids[-1] if kids else self.pid

    def pids(self) -> tuple[int, ...]:
        """The server's process and its helpers (the gateway's delivery process)."""
        return (self.server_pid(), *(kid for kid in descendants(self.pid) if is_helper(kid)))


class Services:
    """Started services, stopped in reverse order on exit, also on errors and Ctrl-C."""

    def __init__(self) -> None:
        self._started: list[Service] = []

    def start(self, *services: tuple[Service, str], timeout: float = 60.0) -> None:
        """Start every ``(service, ready_path)`` at once, then wait until each answers."""
        for service, _ in services:
            self._started.append(service)
            service.start()
        for service, ready_path in services:
            service.wait_ready(ready_path, timeout)

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGINT into ``KeyboardInterrupt`` so ``finally`` blocks
    clean up."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C too, even when started with SIGINT ignored (a background job of a script).
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- /proc -------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    queue = [pid]
    while queue:
        for kid in sorted(children.get(queue.pop(0), [])):
            out.append(kid)
            queue.append(kid)
    return out


def is_helper(pid: int) -> bool:
    """Whether ``pid`` is a helper of a server rather than the server: the gateway's delivery
    process (``gateway.events.process``), whose CPU is the gateway's all the same."""
    try:
        return b"gateway.events.process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (``VmHWM``, ``VmRSS``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
