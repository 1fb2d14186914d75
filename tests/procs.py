"""Real ``dlr-gateway`` processes for tests: started on 127.0.0.1, output to a file, stopped.

``Proc`` is one child process (``python -m gateway ...``) with a fixed ``argv`` and
environment, so it can be killed (``SIGKILL``, as a crashed pod) and started again the same
way. ``stop()`` asks politely first (two SIGTERMs: the gateway's drain delay is skipped on
the second), then kills. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
ADMIN_KEY = "replica-test-admin-key-0123456789"
JWT_SECRET = "replica-test-device-secret-0123456789abcdef"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environ() -> dict[str, str]:
    """This process's environment without any gateway setting (and no proxy for loopback)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "BANDWIDTH_", "GEOCODE"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    return env


def gateway_environ(sim_port: int, database_url: str, **settings: str) -> dict[str, str]:
    """A replica's environment: the simulator as the carrier, one shared database."""
    return {
        **clean_environ(),
        "BANDWIDTH_BASE_URL": f"http://{LOOPBACK}:{sim_port}/api",
        "BANDWIDTH_ACCOUNT_ID": SANDBOX_ACCOUNT_ID,
        "BANDWIDTH_USERNAME": SANDBOX_USERNAME,
        "BANDWIDTH_PASSWORD": SANDBOX_PASSWORD,
        "GATEWAY_ADMIN_KEYS": ADMIN_KEY,
        "GATEWAY_DEVICE_JWT_SECRET": JWT_SECRET,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REPORT_RATE_PER_MINUTE": "0",
        "GATEWAY_LOG_LEVEL": "INFO",
        "GATEWAY_SHUTDOWN_GRACE": "3",
        **settings,
    }


class Proc:
    """``python -m gateway <args>``: start, wait until ``ready_path`` answers, kill, stop."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        port: int,
        ready_path: str,
        logs: Path,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "gateway", *args]
        self.env = env
        self.port = port
        self.base = f"http://{LOOPBACK}:{port}"
        self.ready_path = ready_path
        self.logs = logs
        self.starts = 0
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}-{self.starts}.log"

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> Proc:
        """Start the process (without waiting for it: see ``wait_ready``)."""
        assert self.child is None or self.child.poll() is not None, f"{self.name} is running"
        self.starts += 1
        with self.log.open("wb") as out:
            self.child = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.logs,  # no .env from the repository
            )
        return self

    def ready(self) -> bool:
        assert self.child is not None
        assert self.child.poll() is None, f"{self.name} exited:\n{self.tail()}"
        try:
            answer = httpx.get(self.base + self.ready_path, timeout=1.0, trust_env=False)
        except httpx.TransportError:
            return False
        return answer.status_code == 200

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Proc:
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.tail()}"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """``kill -9``: no drain, no shutdown hooks, abandoned writes left where they are."""
        assert self.child is not None and self.child.poll() is None, f"{self.name} not running"
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(10)

    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: list[Proc], grace: float = 8.0) -> None:
    """Stop them all at once: SIGTERM twice (the second skips the gateway's drain delay),
    then SIGKILL whatever is still running after ``grace`` seconds."""
    for _ in range(2):
        for proc in processes:
            if proc.running():
                assert proc.child is not None
                proc.child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    deadline = time.monotonic() + grace
    for proc in processes:
        if proc.child is None:
            continue
        try:
            proc.child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.child.kill()
            proc.child.wait(5)


def simulator(logs: Path, *options: str) -> Proc:
    port = free_port()
    args = ["simulator", "--host", LOOPBACK, "--port", str(port), *options]
    return Proc("simulator", args, clean_environ(), port, "/_sim/config", logs)


def replica(name: str, logs: Path, env: dict[str, str], port: int | None = None) -> Proc:
    """A gateway replica; ``/healthz`` answers once its lifespan (store, caches) is up."""
    port = port or free_port()
    args = ["serve", "--host", LOOPBACK, "--port", str(port)]
    return Proc(name, args, env, port, "/healthz", logs)


def upgrade(database_url: str, logs: Path) -> None:
    """``dlr-gateway db upgrade``: what an operator runs once before starting the replicas."""
    env = {**clean_environ(), "GATEWAY_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "db", "upgrade"],
        env=env,
        cwd=logs,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (logs / "db-upgrade.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def metric_samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the Prometheus text format (``_total`` included)."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found
