"""The carrier's answers and httpx's exceptions, each mapped to the error tree in one place."""

from __future__ import annotations

import contextlib
import email.utils
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import httpx

from gateway.bandwidth import codec
from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    pass

# -- one table: HTTP answers to errors ---------------------------------------

_STATUS_ERRORS: Final[dict[int, type[UpstreamError]]] = {
    400: UpstreamRejected,
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamNotFound,
    # The carrier (or its balancer) gave up waiting for the request: nothing was acted on,
    # and nothing is wrong with the request. Retried, as a timeout is.
    408: UpstreamUnavailable,
    409: UpstreamConflict,
    422: UpstreamRejected,
    429: UpstreamRateLimited,
}


def error_class(status: int) -> type[UpstreamError]:
    known = _STATUS_ERRORS.get(status)
    if known is not None:
        return known
    if 400 <= status < 500:
        return UpstreamRejected
    return UpstreamUnavailable  # 5xx, and the 1xx/3xx a carrier API never sends


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds from now, as delay-seconds or an HTTP-date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    # Measure against the carrier's own clock when it says what time it is.
    now = datetime.now(UTC)
    date = response.headers.get("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            sent = email.utils.parsedate_to_datetime(date)
            if sent.tzinfo is not None:
                now = sent
    return max(0.0, (when - now).total_seconds())


def answer_error(
    response: httpx.Response, root: ET.Element | None, operation: str, *, write: bool
) -> UpstreamError:
    """The error a non-2xx answer (or a 2xx carrying an error body) stands for."""
    found = codec.response_status(root) if root is not None else None
    code = found.code if found is not None else None
    description = found.description if found is not None else None
    return status_error(response, operation, write=write, code=code, description=description)


def status_error(
    response: httpx.Response,
    operation: str,
    *,
    write: bool,
    code: str | None,
    description: str | None,
) -> UpstreamError:
    """The error an answer's status stands for, with the carrier's own ``code`` and words."""
    status = response.status_code
    cls = error_class(status) if not 200 <= status < 300 else UpstreamRejected
    message = f"{operation}: HTTP {status}"
    if code or description:
        message += f" ({code or '-'}: {description or '-'})"
    if issubclass(cls, UpstreamRejected):
        return cls(message, operation=operation, status=status, code=code, description=description)
    if issubclass(cls, UpstreamUnavailable):
        return cls(
            message,
            operation=operation,
            status=status,
            # A 5xx may come after the carrier applied the write; a 429 never does.
            ambiguous=write and status >= 500,
            retry_after=retry_after(response),
        )
    return cls(message, operation=operation, status=status)  # pragma: no cover - table bug


# -- one place: httpx exceptions to errors ------------------------------------

#: Failures that happen before a single byte of the request has left.
_NOTHING_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
#: Failures that another attempt cannot cure.
_NOT_RETRYABLE: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class Failed(Exception):
    """An attempt's error plus what the retry loop needs to know about it."""

    def __init__(self, error: UpstreamError, reason: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason  # the retry reason, or None when a retry cannot help


@contextlib.contextmanager
def translate(operation: str, *, write: bool) -> Iterator[None]:
    """Turn httpx's (and the attempt timer's) exceptions into the upstream error tree."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as exc:
        ambiguous = write and not isinstance(exc, _NOTHING_SENT)
        error: UpstreamError = UpstreamTimeout(
            f"{operation}: no answer in time ({type(exc).__name__})",
            operation=operation,
            ambiguous=ambiguous,
        )
        raise Failed(error, "timeout") from exc
    except httpx.TransportError as exc:
        ambiguous = write and not isinstance(exc, _NOTHING_SENT)
        error = UpstreamUnavailable(
            f"{operation}: connection failed ({type(exc).__name__})",
            operation=operation,
            ambiguous=ambiguous,
        )
        raise Failed(error, None if isinstance(exc, _NOT_RETRYABLE) else "connection") from exc
