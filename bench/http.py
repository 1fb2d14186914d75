"""A minimal HTTP/1.1 keep-alive client over asyncio streams, for load generation.

httpx costs the load generator several times more CPU per request than the server under test
spends on a small request; on a 2-core machine that CPU comes out of the server's share. This
client pre-encodes requests and parses only the status line, ``Content-Length`` and chunked
bodies: all the servers here need.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass


def encode_request(
    method: str,
    path: str,
    host: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The request's bytes, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as this client reads it."""


class Connection:
    """One keep-alive connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def send(self, request: bytes) -> Answer:
        """Send pre-encoded ``request``; one retry on a fresh connection if the old one died."""
        for attempt in (1, 2):
            reader, writer = await self._open()
            try:
                writer.write(request)
                async with asyncio.timeout(self.timeout):
                    return await self._read(reader)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                await self.close()
                if attempt == 2:
                    raise ProtocolError(f"connection failed: {exc!r}") from exc
            except BaseException:
                await self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, reader: asyncio.StreamReader) -> Answer:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length = -1
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            body = await _read_chunked(reader)
        elif length >= 0:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            close = True
        if close:
            await self.close()
        return Answer(status, body)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Pool:
    """Connections handed out one request at a time; grows as concurrency needs."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._idle: list[Connection] = []
        self._all: list[Connection] = []

    async def send(self, request: bytes) -> Answer:
        conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = Connection(self.host, self.port, self.timeout)
            self._all.append(conn)
        try:
            answer = await conn.send(request)
        except BaseException:
            self._all.remove(conn)
            await conn.close()
            raise
        self._idle.append(conn)
        return answer

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()
        self._idle.clear()
