"""geopy's HTTP seam, served by the gateway's shared ``httpx.AsyncClient``.

geopy builds its adapter itself, as ``adapter_factory(proxies=..., ssl_context=...)``; pass
``adapter_factory(client)`` (a ``functools.partial``) so every geocoder request goes through the one
pooled client the app's lifespan owns. The adapter speaks geopy's error contract: it raises only
``AdapterHTTPError`` (non-2xx; the Geocoder base maps the status to a typed error through its
``ERROR_CODE_MAP``), ``GeocoderTimedOut``, ``GeocoderUnavailable``, ``GeocoderParseError`` and
``GeocoderServiceError``. ``httpx.TimeoutException`` is not an ``asyncio.TimeoutError``, so it is
translated here explicitly.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

import httpx
from geopy.adapters import AdapterHTTPError, BaseAsyncAdapter
from geopy.exc import (
    GeocoderParseError,
    GeocoderServiceError,
    GeocoderTimedOut,
    GeocoderUnavailable,
    GeopyError,
)

#: A geocoder answer is a few kilobytes; anything near this is not one.
MAX_RESPONSE_BYTES = 1024 * 1024
#: How much of an error body is kept for geopy's log line and the exception.
MAX_ERROR_TEXT_BYTES = 4096

#: A request's headers, as geopy passes them.
Headers = dict[str, str] | None


class HttpxAdapter(BaseAsyncAdapter):  # type: ignore[misc]
    """A ``geopy.adapters.BaseAsyncAdapter`` over a shared ``httpx.AsyncClient``.

    ``proxies`` and ``ssl_context`` are accepted because geopy passes them; they are ignored, since
    proxying and TLS are the client's configuration. Leaving ``async with`` does not close the
    client: its owner does.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        proxies: Any = None,
        ssl_context: Any = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(proxies=proxies, ssl_context=ssl_context)
        self.client = client
        self.max_response_bytes = max_response_bytes

    async def get_text(self, url: str, *, timeout: float | None, headers: Headers) -> str:  # noqa: ASYNC109 - geopy's interface
        body, encoding = await self._get(url, seconds=timeout, headers=headers)
        try:
            return body.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise GeocoderParseError(f"Unable to decode the response: {exc}") from exc

    async def get_json(self, url: str, *, timeout: float | None, headers: Headers) -> Any:  # noqa: ASYNC109 - geopy's interface
        body, _ = await self._get(url, seconds=timeout, headers=headers)
        try:
            return json.loads(body)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            raise GeocoderParseError(f"The response is not valid JSON: {exc}") from exc

    async def _get(self, url: str, *, seconds: float | None, headers: Headers) -> tuple[bytes, str]:
        try:
            async with asyncio.timeout(seconds):
                async with self.client.stream(
                    "GET", url, headers=headers, timeout=seconds
                ) as response:
                    if not response.is_success:
                        text = await self._read(response, MAX_ERROR_TEXT_BYTES, truncate=True)
                        raise AdapterHTTPError(
                            f"Non-successful status code {response.status_code}",
                            status_code=response.status_code,
                            headers=response.headers,
                            text=text.decode(response.encoding or "utf-8", errors="replace"),
                        )
                    body = await self._read(response, self.max_response_bytes, truncate=False)
                    return body, response.encoding or "utf-8"
        except (GeopyError, AdapterHTTPError):
            raise
        except httpx.TimeoutException as exc:
            raise GeocoderTimedOut(f"Service timed out: {exc!r}") from exc
        except TimeoutError as exc:  # the overall bound above
            raise GeocoderTimedOut("Service timed out") from exc
        except httpx.TransportError as exc:
            raise GeocoderUnavailable(f"Service not available: {exc!r}") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise GeocoderServiceError(f"Request failed: {exc!r}") from exc

    @staticmethod
    async def _read(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > limit:
            raise GeocoderServiceError(f"Response too large ({declared} bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                if truncate:
                    chunks.append(chunk[: limit - (size - len(chunk))])
                    break
                raise GeocoderServiceError(f"Response larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def adapter_factory(client: httpx.AsyncClient) -> Callable[..., HttpxAdapter]:
    """What to pass as a geopy geocoder's ``adapter_factory``."""
    return functools.partial(HttpxAdapter, client=client)
