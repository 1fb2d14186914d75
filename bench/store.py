"""The gateway's state store for a benchmark run: ``--store sqlite | postgres | none``.

- ``sqlite`` (the default, as a fresh install runs): the embedded SQLite file, made and
  migrated by the gateway itself in the run's temporary directory.
- ``postgres``: the database named by ``--store-url``, else a throwaway PostgreSQL cluster on
  127.0.0.1 made from the installed server binaries, with PostgreSQL's default durability
  (fsync and synchronous commit on, unlike the test suite's cluster). Migrated here first,
  as the Kubernetes Job does before the pods start.
- ``none``: no store; order kept in process memory (``GATEWAY_DATABASE_URL=none``).

``--store-naive`` turns off what makes an unchanged report cheap on a store — the warm
binding cache and group commit — so that each unchanged report costs a read and a write of
its own: the figure the issue asks to compare against.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from gateway.settings import NO_DATABASE
from gateway.store import open_store

STORES = ("sqlite", "postgres", "none")

#: What ``--store-naive`` sets: an LRU of one binding, a statement per advance.
NAIVE_ENV = {"GATEWAY_BINDING_CACHE_SIZE": "1", "GATEWAY_STORE_MAX_BATCH": "1"}


async def _migrate(url: str) -> None:
    async with await open_store(url, create=True):
        pass


@contextlib.contextmanager
def prepared(kind: str, url: str | None, *, naive: bool) -> Iterator[dict[str, Any]]:
    """Yield ``{"env": gateway environment, "describe": what the JSON records}``."""
    if kind not in STORES:
        raise ValueError(kind)
    if naive and kind == "none":
        raise SystemExit("--store-naive needs a store (sqlite or postgres)")
    extra = dict(NAIVE_ENV) if naive else {}
    if kind == "none":
        yield {"env": {"GATEWAY_DATABASE_URL": NO_DATABASE}, "describe": {"kind": "none"}}
        return
    if kind == "sqlite":
        env = {**extra}
        if url:
            env["GATEWAY_DATABASE_URL"] = url
        yield {"env": env, "describe": {"kind": "sqlite", "file": url or "data/ (embedded)"}}
        return
    if url:
        asyncio.run(_migrate(url))
        yield {
            "env": {"GATEWAY_DATABASE_URL": url, **extra},
            "describe": {"kind": "postgres", "server": "given (--store-url)", "naive": naive},
        }
        return
    from tests.pg import running_postgres  # the test suite's throwaway cluster, made durable

    with running_postgres(durable=True) as server:
        database = server.create_database()
        asyncio.run(_migrate(database))
        yield {
            "env": {"GATEWAY_DATABASE_URL": database, **extra},
            "describe": {
                "kind": "postgres",
                "server": "throwaway cluster on 127.0.0.1 (fsync on)",
                "naive": naive,
            },
        }
