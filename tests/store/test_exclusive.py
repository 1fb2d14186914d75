"""One serving process per SQLite file: a second ``serve`` on the same file refuses to start.

A gateway on SQLite answers device reads and 911 queries from its own memory; a second
server on the file would change it unseen, and the first would answer a 911 call with a
place the device has left.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gateway.store.exclusive import AlreadyServed, hold_sqlite_file, lock_path
from tests import procs


def test_a_file_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'gw.db'}"
    first = hold_sqlite_file(url)
    assert first is not None and lock_path(tmp_path / "data" / "gw.db").exists()
    with pytest.raises(AlreadyServed, match="PostgreSQL"):
        hold_sqlite_file(url)
    other = hold_sqlite_file(f"sqlite:///{tmp_path / 'other.db'}")  # another file: free
    assert other is not None
    first.close()
    again = hold_sqlite_file(url)  # released: the next may
    assert again is not None
    again.close()
    other.close()
    for url in ("sqlite+aiosqlite://", "sqlite:///:memory:", "postgresql://u@127.0.0.1/db"):
        assert hold_sqlite_file(url) is None


def _serve(tmp_path: Path, database: str) -> procs.Proc:
    port = procs.free_port()
    env = {**procs.clean_environ(), "GATEWAY_DATABASE_URL": database}
    args = ["serve", "--sandbox", "--host", procs.LOOPBACK, "--port", str(port)]
    return procs.Proc(f"serve-{port}", args, env, port, "/healthz", tmp_path)


def test_a_second_server_on_the_same_file_refuses_to_start(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'gw.db'}"
    first = _serve(tmp_path, database).start().wait_ready()
    try:
        second = _serve(tmp_path, database)
        refused = subprocess.run(
            second.argv,
            env=second.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "another dlr-gateway process is serving from the SQLite file" in refused.stderr
        assert first.ready()  # the first one serves on, unharmed
        # However the first ends (here kill -9), the file is free for the next.
        first.kill()
        started = time.monotonic()
        second.start().wait_ready()
        assert time.monotonic() - started < 60
        second.stop()
    finally:
        procs.stop_all([first])
