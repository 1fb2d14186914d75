"""A real ``dlr-gateway serve`` for the events' process tests: its settings and admin client."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.procs import ADMIN_KEY, gateway_environ

#: The call-time query's credentials the served gateway is started with.
QUERY_USER, QUERY_PASSWORD = "carrier", "query-password-0123456789"


def events_environ(sim_port: int, tmp_path: Path, **settings: str) -> dict[str, str]:
    """A gateway on a SQLite file in ``tmp_path`` that answers the call-time query and may
    deliver to a receiver on loopback, with quick retries (``settings`` override them)."""
    return gateway_environ(
        sim_port,
        f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_EMERGENCY_QUERY_USERNAME=QUERY_USER,
        GATEWAY_EMERGENCY_QUERY_PASSWORD=QUERY_PASSWORD,
        GATEWAY_EVENT_RETRY_BASE="0.2",
        GATEWAY_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        **settings,
    )


def admin_client(base: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, trust_env=False
    )
