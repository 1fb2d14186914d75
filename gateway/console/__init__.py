"""The operator console: server-rendered pages at ``/console/`` for the people who run the
gateway (``GATEWAY_CONSOLE=true``; on in sandbox mode).

``routes`` serves the pages behind an admin-key sign-in (``auth``), ``queries`` reads the
state store one page at a time, ``geo`` draws the map. No page needs JavaScript; none loads
anything from another host unless ``GATEWAY_CONSOLE_TILE_URL`` names a tile server.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.settings import Settings


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes, mounted at ``/console``, and ``/console`` sent to its home."""
    from gateway.console.routes import Console

    return Console(settings).routes()
