"""Serve the simulator alone (``dlr-gateway simulator``)."""

from __future__ import annotations

from gateway.simulator.app import create_simulator
from gateway.simulator.config import SimulatorConfig


def run(host: str, port: int, config: SimulatorConfig) -> None:
    """Serve the simulator with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_simulator(config), host=host, port=port, ws="none")
