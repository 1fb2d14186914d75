"""The benchmark harness: ``python -m bench [--quick] [--out FILE]``.

It starts the carrier simulator, the gateway and a bare Starlette baseline on loopback as
subprocesses, drives them with ``wrk`` (or an asyncio load generator when ``wrk`` is not
installed), and prints and writes the figures described in ``docs/benchmarks.md``.
"""

from __future__ import annotations
