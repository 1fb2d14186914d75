"""A stateful stand-in for the Bandwidth Emergency Calling API (sandbox mode, tests, benchmarks).

    create_simulator(config, *, sleep, clock) -> Starlette   # app.state.simulator: Simulator
    SimulatorConfig                                          # credentials, latency, faults
    SimulatorTransport(app)                                  # in-process httpx transport
    run(host, port, config)                                  # serve it with uvicorn

The carrier API lives under ``/api/accounts/{accountId}/e911s``; ``/_sim/state``, ``/_sim/calls``,
``/_sim/config`` and ``/_sim/reset`` are open JSON views for tests and benchmarks.
"""

from __future__ import annotations

from gateway.simulator.app import OPERATIONS, Operation, Simulator, create_simulator
from gateway.simulator.config import FAULT_KINDS, SimulatorConfig
from gateway.simulator.faults import SimulatedConnectionReset
from gateway.simulator.serve import run
from gateway.simulator.store import Code
from gateway.simulator.transport import SimulatorTransport

__all__ = [
    "FAULT_KINDS",
    "OPERATIONS",
    "Code",
    "Operation",
    "SimulatedConnectionReset",
    "Simulator",
    "SimulatorConfig",
    "SimulatorTransport",
    "create_simulator",
    "run",
]
