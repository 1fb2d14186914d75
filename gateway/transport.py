"""httpx's requests sent by aiohttp: the carrier's and the geocoder's calls for less CPU.

httpx's own transport (httpcore over anyio) is pure Python; aiohttp's HTTP/1.1 stack, whose
parser is compiled, costs a fraction of its CPU per request (docs/benchmarks.md, "The
carrier's calls over aiohttp"). ``AiohttpTransport`` keeps httpx's API, auth, timeouts and tests'
transports, and swaps only the sending.

Errors keep httpx's meaning, which the carrier client's retries rest on: only a failure
before any byte of the request left (no connection, a refused or timed-out connect, a bad
URL) is a ``ConnectError``, ``ConnectTimeout`` or ``UnsupportedProtocol``; anything after
may have reached the carrier and is a ``ReadTimeout``, ``ReadError`` or
``RemoteProtocolError``.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx

#: Bytes per chunk of an answer's body.
CHUNK = 65_536


def _error(exc: Exception, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error ``exc`` means, or None when it is not the network's."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout  # a connection (or a free one in the pool) was not had
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError  # DNS, refused, TLS handshake: nothing was sent
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, (aiohttp.ClientError, OSError)):
        kind = httpx.ReadError
    else:
        return None
    return kind(message, request=request)


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = _error(exc, request)
        if error is None:
            raise
        raise error from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk

    async def aclose(self) -> None:
        # Read to its end, the connection goes back to the pool; else it is closed.
        self._response.release()


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's verifying context, made once per process: loading the CA bundle costs tens of
    milliseconds of CPU and its certificates' memory, for each client that loads it."""
    return httpx.create_ssl_context()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient``'s transport: HTTP/1.1 only, no proxy, no redirects (httpx's
    job), answers undecoded (httpx decodes them). Connections are pooled up to
    ``limits.max_connections``; idle ones are closed after ``limits.keepalive_expiry``.
    httpx's ``write`` timeout has no counterpart: callers bound a whole exchange anyway."""

    def __init__(self, limits: httpx.Limits, *, verify: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self.ssl_context = verify or default_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeouts = request.extensions.get("timeout", {})
        connect, pool = timeouts.get("connect"), timeouts.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        with _mapped(request):
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        return httpx.Response(
            response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for a client with ``limits``: aiohttp's, or None (httpx's own, which
    honours them) where the environment names a proxy (``HTTPS_PROXY`` and the like)."""
    if urllib.request.getproxies():
        return None
    return AiohttpTransport(limits)
