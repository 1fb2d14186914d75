"""SIGTERM: readiness turns 503 at once, in-flight requests finish, the process exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import create_app
from gateway.metrics import Metrics
from gateway.server import DRAIN_DELAY, GatewayServer, build_config, start_draining
from tests.harness import gateway, gateway_settings

ROOT = Path(__file__).resolve().parent.parent
#: The slow request outlives the drain delay, so it is still running when uvicorn stops
#: listening and has to be waited for.
SLOW_MS = (DRAIN_DELAY + 1.0) * 1000
GRACE = 12.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, **kwargs)
    except httpx.TransportError:
        return None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, Path]]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "BANDWIDTH_", "GEOCODE"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        GATEWAY_SHUTDOWN_GRACE=str(GRACE),
        GATEWAY_LOG_LEVEL="INFO",
        # The slow request must not time out at the (simulated) carrier.
        GATEWAY_UPSTREAM_TIMEOUT="20",
        GATEWAY_UPSTREAM_DEADLINE="20",
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=tmp_path,  # no .env from the repository
        )
    try:
        yield process, f"http://127.0.0.1:{port}", out, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_drains_then_exits_zero(
    server: tuple[subprocess.Popen[bytes], str, Path, Path],
) -> None:
    process, base, out, err = server
    healthy = _wait_for(lambda: _get(f"{base}/healthz"), 15, "the server to start")
    assert healthy.status_code == 200
    key = _wait_for(
        lambda: next(
            (
                line.split()[-1]
                for line in out.read_text().splitlines()
                if line.strip().startswith("admin key:")
            ),
            None,
        ),
        5,
        "the admin key",
    )
    admin = {"Authorization": f"Bearer {key}"}
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    reset = httpx.post(
        f"{base}/sandbox/bandwidth/_sim/reset", json={"latencyMs": SLOW_MS}, timeout=5
    )
    assert reset.status_code == 200, reset.text

    slow: dict[str, Any] = {}

    def slow_request() -> None:
        try:
            slow["response"] = httpx.get(
                f"{base}/v1/endpoints",
                headers={**admin, "X-Request-ID": "slow-1"},
                timeout=GRACE + 5,
            )
        except httpx.HTTPError as exc:  # pragma: no cover - reported by the asserts below
            slow["error"] = exc
        slow["done"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)  # the request is in flight, held by the simulator's latency
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)

    # Readiness turns at once; everything else is still served meanwhile.
    unready = _wait_for(
        lambda: (r := _get(f"{base}/readyz")) is not None and r.status_code == 503 and r,
        1.0,
        "/readyz to answer 503",
    )
    assert unready.json()["draining"] is True
    assert time.monotonic() - sent < 1.0
    alive = _get(f"{base}/healthz")
    assert alive is not None and alive.status_code == 200

    thread.join(GRACE + 5)
    assert "error" not in slow, slow.get("error")
    assert slow["response"].status_code == 200, slow["response"].text
    assert slow["done"] - sent > DRAIN_DELAY - 1  # it outlived the drain delay

    code = process.wait(timeout=GRACE + 5)
    exited = time.monotonic() - sent
    assert code == 0, err.read_text()
    assert exited < GRACE

    # The logs are JSON lines; uvicorn stopped listening before the slow request ended.
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("draining:") for m in messages)
    shutting = messages.index("Shutting down")
    (slow_line,) = [i for i, line in enumerate(lines) if line.get("request_id") == "slow-1"]
    assert shutting < slow_line
    assert lines[slow_line]["status"] == 200
    assert lines[slow_line]["route"] == "/v1/endpoints"


# --- the server's drain, without a process ------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _server(on_drain: Any, clock: _Clock, *, grace: float = 20, delay: float = 5) -> GatewayServer:
    app = create_app(gateway_settings(), metrics=Metrics())
    config = build_config(app, host="127.0.0.1", port=0, settings=gateway_settings())
    return GatewayServer(config, on_drain=on_drain, grace=grace, drain_delay=delay, clock=clock)


def test_signals_drain_then_shut_down_within_the_grace() -> None:
    clock = _Clock()
    drained: list[bool] = []

    def on_drain() -> bool:
        drained.append(True)
        return True

    server = _server(on_drain, clock)

    async def scenario() -> None:
        server.handle_exit(signal.SIGTERM, None)
        assert drained == [True]
        assert not server.should_exit
        clock.now += 4.9
        assert await server.on_tick(1) is False
        clock.now += 0.1
        assert await server.on_tick(2) is True
        # What the drain used comes off the graceful shutdown's timeout.
        clock.now += 0.5
        assert server.remaining_grace() == 14
        clock.now += 60
        assert server.remaining_grace() == 0

    with _quiet_uvicorn():
        asyncio.run(scenario())


def test_a_second_signal_skips_the_wait_and_a_third_forces() -> None:
    clock = _Clock()
    server = _server(lambda: True, clock)
    server.handle_exit(signal.SIGTERM, None)
    assert not server.should_exit
    server.handle_exit(signal.SIGINT, None)
    assert server.should_exit and not server.force_exit
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit


def test_a_signal_before_startup_exits_at_once() -> None:
    server = _server(lambda: False, _Clock())
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


def test_the_drain_never_exceeds_the_grace() -> None:
    server = _server(lambda: True, _Clock(), grace=2, delay=5)
    assert server.drain_delay == 2


def test_start_draining_flips_readiness_once_the_lifespan_has_run() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert (await gw.http.get("/readyz")).status_code == 200
            assert start_draining(gw.app)
            answer = await gw.http.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["draining"] is True
            assert (await gw.http.get("/healthz")).status_code == 200

    asyncio.run(scenario())
    assert not start_draining(create_app(gateway_settings(), metrics=Metrics()))


def test_uvicorn_uses_uvloop_and_httptools() -> None:
    app = create_app(gateway_settings(), metrics=Metrics())
    with _quiet_uvicorn():
        config = build_config(app, host="127.0.0.1", port=0, settings=gateway_settings())
        config.load()
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert config.access_log is False
    assert config.timeout_graceful_shutdown == 20


@contextlib.contextmanager
def _quiet_uvicorn() -> Iterator[None]:
    """uvicorn's Config and Server change its loggers; put them back afterwards."""
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
        for lg in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled


@pytest.mark.parametrize(("keep_alive", "open_after_idle"), [(1.0, False), (75.0, True)])
def test_idle_connections_stay_open_for_the_keep_alive_timeout(
    keep_alive: float, open_after_idle: bool
) -> None:
    """A load balancer reuses idle connections for up to its own idle timeout (60 s on
    common ones); the gateway must not close them first (GATEWAY_KEEP_ALIVE_TIMEOUT)."""
    request = b"GET /ping HTTP/1.1\r\nHost: gw\r\n\r\n"

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 5)

    async def scenario() -> None:
        async with _serving(keep_alive) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                assert b"pong" in await exchange(reader, writer)
                # Idle past the timeout, or past uvicorn's own default (5 s) when it is longer.
                await asyncio.sleep(keep_alive + 1.0 if not open_after_idle else 6.0)
                if open_after_idle:
                    assert b"pong" in await exchange(reader, writer)
                else:
                    assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed
            finally:
                writer.close()

    with _quiet_uvicorn():
        asyncio.run(scenario())


@contextlib.asynccontextmanager
async def _serving(keep_alive: float) -> AsyncIterator[int]:
    """``GatewayServer`` on a loopback port (yielded) with an app answering ``/ping`` at once
    and ``/slow`` after 2 s."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def slow(_: Request) -> PlainTextResponse:
        await asyncio.sleep(2.0)
        return PlainTextResponse("slow pong")

    app = Starlette(
        routes=[Route("/ping", lambda _: PlainTextResponse("pong")), Route("/slow", slow)]
    )
    settings = gateway_settings(keep_alive_timeout=keep_alive)
    server = GatewayServer(
        build_config(app, host="127.0.0.1", port=0, settings=settings),
        on_drain=lambda: False,
        grace=1,
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving


def test_a_silent_or_trickling_client_is_closed_after_the_keep_alive_timeout() -> None:
    """A connection that sends nothing, or a byte of a request head every 0.3 s, is closed
    once idle for GATEWAY_KEEP_ALIVE_TIMEOUT (1 s here), not held for ever; a request being
    served (2 s) is not cut, and its connection gets the timeout again after the answer."""

    async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
        try:
            return await asyncio.wait_for(reader.read(4096), seconds) == b""
        except ConnectionResetError:
            return True

    async def trickled_until_closed(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], head: bytes
    ) -> float:
        """Seconds until the server closed the connection, sending ``head`` a byte at a time."""
        started = time.monotonic()
        reader, writer = connection
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                break
            if reader.at_eof():
                break
            await asyncio.sleep(0.3)
        return time.monotonic() - started

    async def scenario() -> None:
        async with _serving(1.0) as port:
            silent = await asyncio.open_connection("127.0.0.1", port)
            trickling = await asyncio.open_connection("127.0.0.1", port)
            served = await asyncio.open_connection("127.0.0.1", port)
            served[1].write(b"GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n")
            head = b"GET /ping HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"a" * 100  # 40 s of it
            try:
                assert await trickled_until_closed(trickling, head) < 3.0
                assert await closed_within(silent[0], 0.1)
                assert b"slow pong" in await asyncio.wait_for(served[0].read(4096), 5)
                assert await closed_within(served[0], 2.0)
            finally:
                for _, writer in (silent, trickling, served):
                    writer.close()

    with _quiet_uvicorn():
        asyncio.run(scenario())
