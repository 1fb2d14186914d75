"""How often the event loop wakes per call-time query: a count, not a time, so a busy
machine barely moves it.

    python -m bench.wakes [--requests N]

Runs ``bench.inproc``'s query path (2 ms apart) for N and for 2N queries, counting the loop's
iterations, what is scheduled on it (``call_soon`` by callback, ``call_at``,
``call_soon_threadsafe``: a hand-over back from a thread, SQLite's driver thread here) and
the state store's units of work; prints the difference divided by N: the counts per query,
warm-up and start-up left out. Each query includes the driver's own pause (one ``call_at``
and one task wake-up).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import os
from asyncio import base_events
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bench import inproc

#: Methods of the store counted per call, where the running gateway has them.
UNITS = (
    ("gateway.store.driver", "DriverPaths", "run_driver_unit"),
    ("gateway.store.driver", "DriverPaths", "run_unit"),
    ("gateway.store.outbox", "OutboxStore", "write_events"),
    ("gateway.store.sql", "SqlStateStore", "record_many"),
)


def _count_calls(counts: Counter[str]) -> None:
    loop = base_events.BaseEventLoop

    def scheduling(name: str, callback_at: int) -> None:
        original: Callable[..., Any] = getattr(loop, name)

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            callback = args[callback_at] if len(args) > callback_at else None
            counts[name] += 1
            counts[f"{name}:{getattr(callback, '__qualname__', type(callback).__name__)}"] += 1
            return original(self, *args, **kwargs)

        setattr(loop, name, counted)

    scheduling("call_soon", 0)
    scheduling("call_soon_threadsafe", 0)
    scheduling("call_at", 1)
    once = loop._run_once  # type: ignore[attr-defined]

    def run_once(self: Any) -> None:
        counts["loop iterations"] += 1
        once(self)

    loop._run_once = run_once  # type: ignore[attr-defined]
    for module, cls_name, method in UNITS:
        cls = getattr(importlib.import_module(module), cls_name, None)
        original = getattr(cls, method, None)
        if original is None:
            continue

        async def unit(self: Any, *a: Any, _o: Any = original, _n: str = method, **k: Any) -> Any:
            counts[f"store: {_n}"] += 1
            return await _o(self, *a, **k)

        setattr(cls, method, functools.wraps(original)(unit))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    n = parser.parse_args(argv).requests
    counts: Counter[str] = Counter()
    _count_calls(counts)
    seen = []
    for requests in (n, 2 * n):
        counts.clear()
        with open(os.devnull, "w") as devnull:
            asyncio.run(inproc.run("query", requests, 500, 100, devnull))
        seen.append(Counter(counts))
    first, second = seen
    per_query = {k: (second[k] - first[k]) / n for k in first.keys() | second.keys()}
    for name, value in sorted(per_query.items(), key=lambda kv: -kv[1]):
        if abs(value) >= 0.01:
            print(f"{value:8.3f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
