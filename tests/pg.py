"""A PostgreSQL server for tests: the one in ``GATEWAY_TEST_POSTGRES_URL``, else a throwaway one.

The throwaway cluster is made with the installed PostgreSQL binaries (``initdb``, ``pg_ctl``,
found under ``/usr/lib/postgresql/*/bin`` or on ``PATH``) in a temporary directory, listening
on 127.0.0.1 on a free port (and a Unix socket in the same directory), with trust auth and
durability turned off for speed. ``initdb`` refuses to run as root, so as root the cluster
belongs to the ``postgres`` OS user (``runuser -u postgres``).

Without binaries the caller fails with ``PostgresUnavailable`` naming what to install, unless
``GATEWAY_TEST_SKIP_POSTGRES=1`` says to skip the PostgreSQL half of the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

URL_ENV = "GATEWAY_TEST_POSTGRES_URL"
SKIP_ENV = "GATEWAY_TEST_SKIP_POSTGRES"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    pass


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes")


def find_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
        reverse=True,
    )
    candidates += [p for p in [shutil.which("initdb")] if p]
    for candidate in candidates:
        bindir = Path(candidate).parent
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A server to make databases on. ``owned``: started here, so tests may stop it."""

    admin_url: URL  # postgresql+asyncpg://…/<maintenance database>
    owned: bool = False
    bindir: Path | None = None
    root: Path | None = None
    port: int | None = None
    #: Keep PostgreSQL's default durability (fsync, synchronous commit): for benchmarks.
    durable: bool = False
    _run_as: list[str] = field(default_factory=list)
    _databases: list[str] = field(default_factory=list)
    _watchdog: subprocess.Popen[bytes] | None = None

    # -- databases -------------------------------------------------------------------------

    def create_database(self) -> str:
        """A fresh, empty database: its async SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self._databases.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        if name in self._databases:
            self._databases.remove(name)
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, sql: str) -> None:
        url = self.admin_url
        connection = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=10,
        )
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    # -- the server itself (owned servers only) ----------------------------------------------

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        command = [*self._run_as, str(self.bindir / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise PostgresUnavailable(
                f"{' '.join(args[:1])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )
        return result

    def start(self) -> None:
        assert self.owned and self.root is not None and self.port is not None
        fast = ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                *([] if self.durable else fast),
                "-c max_connections=200",
            ]
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        """Shut down (fast: connections are cut, but commits survive the restart)."""
        assert self.owned and self.root is not None
        self._pg("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def shutdown(self) -> None:
        """End of session: drop what was made; stop and delete an owned cluster."""
        if not self.owned:
            for name in list(self._databases):
                with contextlib.suppress(Exception):
                    self.drop_database(self.admin_url.set(database=name).render_as_string(False))
            return
        assert self.root is not None
        with contextlib.suppress(Exception):
            self._pg("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:  # it ends on its own once the directory is gone
            self._watchdog.wait(timeout=10)


# Stops the cluster if the test process dies without cleaning up (killed by a CI timeout):
# a detached process polls its parent, then stops the server and deletes its directory.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, root, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.path.isdir(root):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        subprocess.run(command, capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
        break
    time.sleep(0.2)
"""


def _start_watchdog(server: PostgresServer) -> subprocess.Popen[bytes]:
    assert server.bindir is not None and server.root is not None
    stop = [*server._run_as, str(server.bindir / "pg_ctl"), "-D", str(server.root / "data")]
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WATCHDOG,
            str(os.getpid()),
            str(server.root),
            *stop,
            "-m",
            "immediate",
            "-w",
            "stop",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _throwaway(*, durable: bool = False) -> PostgresServer:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
            "/usr/lib/postgresql/*/bin or on PATH: install them (apt-get install -y postgresql), "
            f"or point {URL_ENV} at a server, or set {SKIP_ENV}=1 to skip PostgreSQL tests"
        )
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="dlr-gateway-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(
                "running as root, and there is no 'postgres' OS user to own the test cluster "
                "(initdb refuses root): install the postgresql package, or run as another user"
            ) from None
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", SUPERUSER, "--"]
    root.chmod(0o700)
    port = _free_port()
    server = PostgresServer(
        admin_url=URL.create(
            "postgresql+asyncpg",
            username=SUPERUSER,
            host="127.0.0.1",
            port=port,
            database="postgres",
        ),
        owned=True,
        bindir=bindir,
        root=root,
        port=port,
        durable=durable,
        _run_as=run_as,
    )
    try:
        server._pg(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        server.start()
        server._watchdog = _start_watchdog(server)
    except BaseException:
        server.shutdown()
        raise
    return server


def postgres_server(*, durable: bool = False) -> PostgresServer:
    """The server named by ``GATEWAY_TEST_POSTGRES_URL``, else a throwaway one started now."""
    configured = os.environ.get(URL_ENV, "").strip()
    if configured:
        url = make_url(configured)
        return PostgresServer(admin_url=url.set(drivername="postgresql+asyncpg"))
    return _throwaway(durable=durable)


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    server = postgres_server(durable=durable)
    try:
        yield server
    finally:
        server.shutdown()


if __name__ == "__main__":  # a manual check: python -m tests.pg
    with running_postgres() as pg:
        db = pg.create_database()
        print("created", make_url(db).render_as_string(hide_password=True))
        pg.drop_database(db)
