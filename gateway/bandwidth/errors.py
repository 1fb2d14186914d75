"""The upstream's error tree.

    UpstreamError
    ├── UpstreamTimeout        (no answer in time; also a TimeoutError)
    ├── UpstreamUnavailable    (5xx, connection refused or dropped)
    │   └── UpstreamRateLimited  (429; ``retry_after`` seconds)
    ├── UpstreamRejected       (4xx with the carrier's ``code`` and ``description``)
    │   ├── UpstreamAuthError    (401/403: our credentials were refused)
    │   ├── UpstreamNotFound     (404)
    │   └── UpstreamConflict     (409: already exists, or location in use)
    ├── UpstreamParseError     (an answer we cannot read)
    ├── UpstreamPending        (v2: the carrier accepted a write, its order is still open)
    └── UpstreamUnsupported    (the configured carrier API has no such operation)

``ambiguous`` marks a failed write whose effect is unknown: the request may have
reached the carrier and been applied (a timeout, a dropped connection, a 5xx).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

__all__ = [
    "CodecError",
    "UpstreamAuthError",
    "UpstreamConflict",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamParseError",
    "UpstreamPending",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UpstreamUnsupported",
]


@dataclass(eq=False, repr=False)
class UpstreamError(Exception):
    """Any failure talking to the carrier. ``retry_after`` is an ``UpstreamUnavailable``'s,
    ``code`` and ``description`` an ``UpstreamRejected``'s (``None`` elsewhere). A dataclass
    without its ``__eq__`` and ``__repr__``: compared, hashed and shown as exceptions are."""

    message: str
    _: KW_ONLY
    operation: str = ""
    status: int | None = None
    ambiguous: bool = False
    retry_after: float | None = None
    code: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The carrier did not answer within the attempt's timeout or the call's deadline."""


class UpstreamUnavailable(UpstreamError):
    """The carrier could not be reached or answered with a server error."""


class UpstreamRateLimited(UpstreamUnavailable):
    """The carrier asked us to slow down (429)."""


class UpstreamRejected(UpstreamError):
    """The carrier refused the request; ``code`` and ``description`` are its own words."""


class UpstreamAuthError(UpstreamRejected):
    """The carrier refused our credentials (401/403)."""


class UpstreamNotFound(UpstreamRejected):
    """The carrier has no such record (404)."""


class UpstreamConflict(UpstreamRejected):
    """The record already exists, or is in use (409)."""


class UpstreamParseError(UpstreamError):
    """The carrier's answer could not be read."""


class UpstreamPending(UpstreamError):
    """The carrier accepted a write but had not carried it out when the gateway stopped
    waiting (the v2 API's asynchronous orders): ``ambiguous``, as the carrier may yet hold
    it. ``order_id`` names the carrier's order, ``endpoint`` the record written."""

    def __init__(
        self, message: str, *, operation: str = "", order_id: str, endpoint: object = None
    ) -> None:
        super().__init__(message, operation=operation, status=202, ambiguous=True)
        self.order_id = order_id
        self.endpoint = endpoint


class UpstreamUnsupported(UpstreamError):
    """The configured carrier API cannot do this; ``instead`` says what to use."""

    def __init__(self, message: str, *, operation: str = "", instead: str) -> None:
        super().__init__(message, operation=operation)
        self.instead = instead


class CodecError(ValueError):
    """An XML body is malformed, hostile (DTD, entities), too large, or of the wrong shape."""
