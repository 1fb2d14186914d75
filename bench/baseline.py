"""The baseline: a bare Starlette app that answers a small JSON body.

It runs under exactly the server settings ``dlr-gateway serve`` uses: the same
``uvicorn.Config`` (``gateway.server.build_config``: one worker, uvloop and httptools when
installed, the same logging set-up), so ``gateway rps / baseline rps`` is what the
gateway's own code costs on top of the server and the framework. It takes the same requests
as the gateway (``POST /v1/location-reports`` with the same bodies) and reads the body.

    python -m bench.baseline --host 127.0.0.1 --port 8081
    granian --interface asgi bench.baseline:app
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ANSWER = {"status": "ok", "changes": {"location": "unchanged", "endpoint": "unchanged"}}


async def report(request: Request) -> Response:
    await request.body()
    return JSONResponse(ANSWER)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/v1/location-reports", report, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/", healthz, methods=["GET"]),
    ]
)


def _config(host: str, port: int) -> uvicorn.Config:
    """The gateway's own uvicorn configuration (``gateway.server.build_config``)."""
    try:
        from gateway.server import build_config
        from gateway.settings import Settings
    except ImportError:  # an older gateway: the arguments its ``cli`` passed to uvicorn.run
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=os.environ.get("GATEWAY_LOG_LEVEL", "INFO").lower(),
            proxy_headers=False,
            server_header=False,
        )
    settings = Settings.from_environ(env_file=None)
    try:
        from gateway.observability import configure_logging

        configure_logging(settings.log_level)
    except ImportError:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    config: uvicorn.Config = build_config(app, host=host, port=port, settings=settings)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    uvicorn.Server(_config(args.host, args.port)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
