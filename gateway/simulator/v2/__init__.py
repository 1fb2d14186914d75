"""A stateful stand-in for Bandwidth's v2 emergency provisioning API (``--api v2``).

    create_v2_simulator(config, *, sleep, clock, order_seconds) -> Starlette

The API lives under ``/api/v2/accounts/{accountId}/emergency``; the ``/_sim/`` views are the
seed simulator's. ``SimulatorTransport`` serves it in-process as it does the seed one.
"""

from __future__ import annotations

from gateway.simulator.v2.app import V2_OPERATIONS, V2Simulator, create_v2_simulator
from gateway.simulator.v2.store import V2Store

__all__ = ["V2_OPERATIONS", "V2Simulator", "V2Store", "create_v2_simulator"]
