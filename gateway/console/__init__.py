"""The operator console: server-rendered pages at ``/console/`` for the people who run the
gateway (``GATEWAY_CONSOLE=true``; on in sandbox mode).

``routes`` serves the pages behind an admin-key sign-in (``auth``), ``queries`` reads the
state store one page at a time, ``geo`` draws the map. No page needs JavaScript; none loads
anything from another host unless ``GATEWAY_CONSOLE_TILE_URL`` names a tile server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.console.routes import Console


def build_console(settings: Settings) -> Console:
    """The console; ``routes()`` mounts it at ``/console``, and sends ``/console`` home."""
    from gateway.console.routes import Console

    return Console(settings)
