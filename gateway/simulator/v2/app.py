"""The v2 simulator: the seed simulator's machinery (call log, latency, Basic auth, the
account check, the rate limit, fault injection, held writes, ``/_sim/`` views) over the v2
API's paths, JSON bodies, error documents and asynchronous orders (``V2Store``)."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request

from gateway.simulator.app import Clock, Operation, Simulator, Sleep
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.store import Outcome
from gateway.simulator.v2.store import V2Store, v2_error

_JSON: Final = "application/json"
_ACCOUNT: Final = "/api/v2/accounts/{accountId}/emergency"

#: Every v2 operation, by its ``operationId``, in route order.
V2_OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation("listAllEndpoints", "GET", _ACCOUNT + "/endpoints", False),
    Operation("addEndpoints", "POST", _ACCOUNT + "/endpoints", True),
    Operation("getEndpoint", "GET", _ACCOUNT + "/endpoints/{endpointId}", False),
    Operation("updateEndpoint", "PATCH", _ACCOUNT + "/endpoints/{endpointId}", True),
    Operation("deleteEndpoint", "DELETE", _ACCOUNT + "/endpoints/{endpointId}", True),
    Operation("listAddresses", "GET", _ACCOUNT + "/addresses", False),
    Operation("addAddress", "POST", _ACCOUNT + "/addresses", True),
    Operation("getAddress", "GET", _ACCOUNT + "/addresses/{addressId}", False),
    Operation("deleteAddress", "DELETE", _ACCOUNT + "/addresses/{addressId}", True),
    Operation("listNotifications", "GET", _ACCOUNT + "/notifications", False),
    Operation("addNotification", "POST", _ACCOUNT + "/notifications", True),
    Operation("getNotification", "GET", _ACCOUNT + "/notifications/{notificationId}", False),
    Operation("deleteNotification", "DELETE", _ACCOUNT + "/notifications/{notificationId}", True),
    Operation("listNotificationsGroups", "GET", _ACCOUNT + "/notificationGroups", False),
    Operation("addNotificationGroup", "POST", _ACCOUNT + "/notificationGroups", True),
    Operation("getNotificationGroup", "GET", _ACCOUNT + "/notificationGroups/{groupId}", False),
    Operation("updateNotificationGroup", "PATCH", _ACCOUNT + "/notificationGroups/{groupId}", True),
    Operation(
        "deleteNotificationGroup", "DELETE", _ACCOUNT + "/notificationGroups/{groupId}", True
    ),
    Operation("listOrders", "GET", _ACCOUNT + "/orders", False),
    Operation("getOrderDetails", "GET", _ACCOUNT + "/orders/{orderId}/details", False),
    Operation("getOrderHistory", "GET", _ACCOUNT + "/orders/{orderId}/history", False),
)


class V2Simulator(Simulator):
    """The v2 API's stand-in; ``store`` is a ``V2Store`` (``order_seconds`` may be changed)."""

    operations = V2_OPERATIONS
    media_type = _JSON

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        order_seconds: float = 1.0,
    ) -> None:
        super().__init__(config, sleep=sleep, clock=clock)
        self.v2 = V2Store(clock, order_seconds, self.config.account_id)
        self.store = self.v2

    @staticmethod
    def _error(status: int, code: str, description: str) -> Outcome:
        return v2_error(status, description)

    @staticmethod
    def _params(request: Request) -> dict[str, str]:
        """The path parameters, and the query's (``limit``, ``offset``, ``addressId``): the
        path's win where both name one."""
        return {**request.query_params, **request.path_params}


def create_v2_simulator(
    config: SimulatorConfig | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    order_seconds: float = 1.0,
) -> Starlette:
    """The v2 simulator app; ``app.state.simulator`` is its ``V2Simulator``."""
    return V2Simulator(config, sleep=sleep, clock=clock, order_seconds=order_seconds).app()
