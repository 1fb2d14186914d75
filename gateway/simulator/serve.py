"""Serve the simulator alone (``dlr-gateway simulator``)."""

from __future__ import annotations

from gateway.simulator.app import create_simulator
from gateway.simulator.config import SimulatorConfig


def run(
    host: str, port: int, config: SimulatorConfig, *, api: str = "seed", order_seconds: float = 1.0
) -> None:
    """Serve the simulator (of the ``api`` named: ``seed`` or ``v2``) until interrupted."""
    import uvicorn

    if api == "v2":
        from gateway.simulator.v2 import create_v2_simulator

        app = create_v2_simulator(config, order_seconds=order_seconds)
    else:
        app = create_simulator(config)
    uvicorn.run(app, host=host, port=port, ws="none")
