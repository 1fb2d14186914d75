"""One serving process per SQLite file.

A gateway on SQLite answers device reads and the carrier's call-time query from its own
memory without reading the file (``Knowledge.answerable``, ``CallerLocator.single_writer``):
every change to the file is its own. A second server on the same file would break that
silently, and a 911 call would be answered with a place the device has left. So ``serve``
holds an exclusive lock on ``<file>.serving.lock`` for as long as it runs (the kernel drops
it when the process ends, however it ends), and a second one refuses to start. Several
replicas share PostgreSQL instead.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from gateway.store.urls import is_memory, is_sqlite, parse


class AlreadyServed(Exception):
    """Another process serves from this SQLite file."""


def lock_path(database: str | Path) -> Path:
    return Path(f"{Path(database).expanduser()}.serving.lock")


def hold_sqlite_file(url: str) -> IO[bytes] | None:
    """Lock ``url``'s SQLite file for this process, until it ends (keep the answer
    referenced); ``None`` when there is no file to lock (PostgreSQL, SQLite in memory)."""
    parsed = parse(url)
    if not is_sqlite(parsed) or is_memory(parsed) or not parsed.database:
        return None
    path = lock_path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyServed(
            f"another dlr-gateway process is serving from the SQLite file {parsed.database} "
            f"(it holds {path}). One process only may: each answers reads and 911 queries "
            "from its own memory, and would not see the other's changes. Stop the other "
            "process, or share PostgreSQL between replicas (GATEWAY_DATABASE_URL="
            "postgresql://...)."
        ) from None
    return handle
