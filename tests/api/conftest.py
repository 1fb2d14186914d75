from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from gateway.app import SANDBOX_PREFIX, create_app
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig, create_simulator

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(seed=7)


@pytest.fixture
def settings() -> Settings:
    base = Settings(admin_keys=(Secret(ADMIN_KEY),), upstream_max_attempts=1)
    return base.for_sandbox(f"http://testserver{SANDBOX_PREFIX}/api")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def client(
    settings: Settings, sim_config: SimulatorConfig, metrics: Metrics
) -> Iterator[TestClient]:
    simulator = create_simulator(
        replace(
            sim_config,
            account_id=settings.bandwidth_account_id,
            username=settings.bandwidth_username,
            password=str(settings.bandwidth_password),
        )
    )
    app = create_app(settings, sandbox_app=simulator, metrics=metrics)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client
