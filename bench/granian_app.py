"""App targets for granian, which imports an app (or a factory) by its dotted name.

    granian --interface asgi --factory bench.granian_app:gateway_app

builds the gateway exactly as ``dlr-gateway serve`` does, from the environment.
"""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings


def gateway_app() -> Starlette:
    """The gateway from ``Settings.from_environ()``; refuses the settings ``serve`` refuses."""
    settings = Settings.from_environ()
    try:
        from gateway.observability import configure_logging

        configure_logging(settings.log_level)
    except ImportError:  # an older gateway: granian's own logging
        pass
    problems = settings.problems()
    if problems:
        raise SystemExit("dlr-gateway cannot start: " + "; ".join(problems))
    return create_app(settings)
