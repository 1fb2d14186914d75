"""httpx over aiohttp (gateway/transport.py) against real servers on loopback: answers come
through whole, connections are reused, and each failure keeps httpx's meaning of whether the
request may have been sent (the carrier client's retries rest on it)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.bandwidth.failures import Failed, translate
from gateway.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


@contextlib.asynccontextmanager
async def _server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1; yields its base URL and a list with its connection count."""
    connections = [0]

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            await handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections
    finally:
        server.close()


def _client(max_connections: int = 4, **timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits),
        timeout=httpx.Timeout(timeout.pop("all", 5.0), **timeout),
        auth=httpx.BasicAuth("user", "secret"),
    )


def test_answers_come_whole_and_connections_are_reused() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await _request(reader)
            seen.append((head, body))
            answer = b"<big>" + b"x" * 200_000 + body + b"</big>"
            writer.write(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/xml\r\nX-Two: a\r\n"
                b"X-Two: b\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer
            )
            await writer.drain()

    async def main() -> list[int]:
        async with _server(echo) as (url, connections), _client() as client:
            for n in range(3):
                response = await client.post(f"{url}/e911s?n={n}", content=b"<r>%d</r>" % n)
                assert response.status_code == 201
                assert response.headers.get_list("x-two") == ["a", "b"]
                assert response.content == b"<big>" + b"x" * 200_000 + b"<r>%d</r></big>" % n
            return connections

    assert asyncio.run(main()) == [1]
    head = seen[2][0].lower()
    assert head.startswith(b"post /e911s?n=2 http/1.1\r\n")
    assert b"authorization: basic dxnlcjpzzwnyzxq=\r\n" in head
    assert head.count(b"content-length:") == 1 and seen[2][1] == b"<r>2</r>"


def _failure(exc: BaseException) -> Failed:
    """What the carrier client makes of ``exc`` on a write."""
    with pytest.raises(Failed) as caught, translate("create_endpoint", write=True):
        raise exc
    return caught.value


def test_a_refused_connection_is_a_connect_error_nothing_sent() -> None:
    async def main() -> None:
        async with _server(_request) as (url, _):
            pass  # closed: its port now refuses
        async with _client() as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.post(f"{url}/e911s", content=b"<r/>")
        assert not _failure(caught.value).error.ambiguous

    asyncio.run(main())


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
def test_a_connection_lost_after_sending_is_ambiguous(answer: bytes) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(answer)
        await writer.drain()

    async def main() -> None:
        async with _server(drop) as (url, _), _client() as client:
            with pytest.raises(httpx.TransportError) as caught:
                await client.post(f"{url}/e911s", content=b"<r/>")
        assert isinstance(caught.value, (httpx.RemoteProtocolError, httpx.ReadError))
        assert _failure(caught.value).error.ambiguous  # the carrier may have applied it

    asyncio.run(main())


def test_no_answer_in_time_is_a_read_timeout_and_ambiguous() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(30)

    async def main() -> None:
        async with _server(silent) as (url, _), _client(all=5.0, read=0.2) as client:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await client.post(f"{url}/e911s", content=b"<r/>")
        assert _failure(caught.value).error.ambiguous

    asyncio.run(main())


def test_no_free_connection_in_time_is_a_connect_timeout_nothing_sent() -> None:
    requests = 0
    arrived = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _request(reader)
        requests += 1
        arrived.set()
        await asyncio.sleep(30)

    async def main() -> None:
        async with _server(slow) as (url, _), _client(1, all=5.0, pool=0.2, connect=0.2) as client:
            first = asyncio.create_task(client.get(f"{url}/one"))
            await arrived.wait()
            with pytest.raises(httpx.ConnectTimeout) as caught:
                await client.get(f"{url}/two")
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
        assert requests == 1
        assert not _failure(caught.value).error.ambiguous

    asyncio.run(main())


def test_transports_share_one_verifying_context_unless_given_their_own() -> None:
    limits = httpx.Limits(max_connections=4)
    first, second = AiohttpTransport(limits), AiohttpTransport(limits)
    assert first.ssl_context is second.ssl_context  # the CA bundle loaded once per process
    assert first.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert first.ssl_context.check_hostname
    own = ssl.create_default_context()
    assert AiohttpTransport(limits, verify=own).ssl_context is own
