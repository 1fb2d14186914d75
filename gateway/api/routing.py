"""Routes that share one path across methods (the admin, webhook and event APIs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def resource(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route per path for all its methods, so that a 405 lists them all in ``Allow``
    (a route per method would answer ``Allow`` with the first route's methods only)."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in by_method:
        by_method["HEAD"] = by_method["GET"]

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    return Route(path, dispatch, methods=list(handlers), name=path)
