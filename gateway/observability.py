"""Per-request observability: request IDs, the request-latency histogram, one JSON log line.

``RequestObservability`` is a pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` adds
a task and a memory stream per request and breaks streaming answers). It sits outside
Starlette's ``ServerErrorMiddleware`` (see ``gateway.app``), so the 500 answers that layer
sends are timed, logged and tagged with their request ID like any other.

``JsonFormatter`` turns every stdlib log record into one JSON object per line;
``configure_logging`` installs it for the whole process (uvicorn's loggers included) when
``dlr-gateway serve`` starts.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Final

from prometheus_client import Histogram
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.jsondump import dumps_line
from gateway.metrics import Children, Metrics
from gateway.settings import SettingsError

__all__ = [
    "UNMATCHED",
    "JsonFormatter",
    "RequestObservability",
    "configure_logging",
    "current_request_id",
    "route_template",
]

#: The ``route`` label (and log field) of a request that matched no route.
UNMATCHED: Final = "unmatched"
#: Request IDs accepted from a client (or a proxy in front); anything else is replaced, so
#: the ID is safe to echo in a header and to log.
_SANE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: A path parameter's converter (``{aeui:path}``): not part of the ``route`` label.
_CONVERTER: Final = re.compile(r"\{(\w+):\w+\}")
_REQUEST_ID_HEADER: Final = b"x-request-id"
#: The method label is a bounded set; anything a client makes up counts as "other".
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Routes a scraper or a kubelet polls every few seconds: their 2xx lines go out at DEBUG, so
#: that INFO shows traffic rather than probes. A failing probe (``/readyz`` 503) stays at INFO.
_PROBE_ROUTES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
#: An AEUI is at most 30 characters; a path segment claiming to be one is cut to this.
_AEUI_LOG_MAX: Final = 64

#: The request ID of the request being served, for every log record emitted while serving it.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None
)

access_log = logging.getLogger("gateway.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(text):
                return text
            break
    return _random_id()


#: Request IDs not yet handed out: 16 bytes of ``os.urandom`` each (as random as
#: ``uuid4().hex``), read for ``_IDS_PER_READ`` at a time rather than a system call each.
_ids: list[str] = []
_IDS_PER_READ = 256
# A child process must not hand out its parent's IDs again.
os.register_at_fork(after_in_child=_ids.clear)


def _random_id() -> str:
    """32 hexadecimal digits of ``os.urandom``, never the same bytes twice."""
    try:
        return _ids.pop()
    except IndexError:
        block = os.urandom(16 * _IDS_PER_READ).hex()
        _ids.extend(block[i : i + 32] for i in range(32, len(block), 32))
        return block[:32]


def route_template(routes: Sequence[BaseRoute], scope: Scope, matched: object) -> str:
    """The ``route`` label: the template of the top-level route that served the request.

    ``matched`` is what Starlette's router left in ``scope["route"]``. A mounted app's own
    router overwrites it with its inner route, so a request under a ``Mount`` is labelled
    with the mount's prefix (``/sandbox/bandwidth``), never with anything of its own path.
    ``scope`` must be the request's scope as it arrived (before routing changed it).
    """
    if matched is None:
        return UNMATCHED
    for route in routes:
        if route is matched and isinstance(route, Route | Mount):
            path = route.path
            return _CONVERTER.sub(r"{\1}", path) if ":" in path else path
    for route in routes:
        if isinstance(route, Mount) and route.matches(scope)[0] is not Match.NONE:
            return route.path
    return UNMATCHED


@dataclass(eq=False)
class RequestObservability:
    """Times, labels and logs each HTTP request (its AEUI, never its headers, query or body)
    and gives it an ``X-Request-ID``: the client's when sane, else a new one, returned on
    every answer and kept in ``request.state.request_id`` and ``current_request_id``."""

    app: ASGIApp
    _: KW_ONLY
    routes: Sequence[BaseRoute]
    metrics: Metrics
    logger: logging.Logger = access_log
    clock: Callable[[], float] = time.perf_counter
    #: The histogram's children by route, method and status (each a bounded set).
    _children: Children[tuple[str, str, int], Histogram] = field(init=False)
    #: ``route_template`` of the top-level routes that served requests, by the route's
    #: ``id`` (routes are not hashable), with the route itself to tell a reused ``id``.
    _templates: dict[int, tuple[object, str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._children = Children(
            lambda key: self.metrics.http_request_duration.labels(key[0], key[1], str(key[2]))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        # What routing needs to find the mount again afterwards; routing rewrites the scope.
        arrived = (scope["path"], scope.get("root_path", ""), scope["method"])
        status: int | None = None
        header_value = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _REQUEST_ID_HEADER
                ]
                headers.append((_REQUEST_ID_HEADER, header_value))
                message = {**message, "headers": headers}
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
            # An exception before the answer started becomes a 500 (ServerErrorMiddleware's
            # answer, or the server's); record it as that.
            self._record(scope, arrived, state, request_id, status or 500, started)

    def _route(self, matched: object, arrived: tuple[str, str, str]) -> str:
        """``route_template`` for the request, remembered for the routes that are one of
        ``routes`` (their template depends on nothing else)."""
        known = self._templates.get(id(matched))
        if known is not None and known[0] is matched:
            return known[1]
        path, root_path, method = arrived
        scope = {"type": "http", "path": path, "root_path": root_path, "method": method}
        route = route_template(self.routes, scope, matched)
        if any(r is matched for r in self.routes) and isinstance(matched, Route | Mount):
            self._templates[id(matched)] = (matched, route)
        return route

    def _record(
        self,
        scope: Scope,
        arrived: tuple[str, str, str],
        state: dict[str, Any],
        request_id: str,
        status: int,
        started: float,
    ) -> None:
        elapsed = max(self.clock() - started, 0.0)
        route = self._route(scope.get("route"), arrived)
        method = arrived[2] if arrived[2] in _METHODS else "other"
        self._children[route, method, status].observe(elapsed)
        if status >= 500:
            level = logging.WARNING
        elif route in _PROBE_ROUTES and status < 300:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        aeui = state.get("aeui") or scope.get("path_params", {}).get("alternate_end_user_id")
        if isinstance(aeui, str) and aeui:
            fields["aeui"] = aeui[:_AEUI_LOG_MAX]
        sink = _json_sink(self.logger, level)
        if sink is None:
            self.logger.log(level, "request", extra=fields)
        else:
            _write_line(sink, self.logger.name, level, fields)


def _json_sink(logger: logging.Logger, level: int) -> logging.StreamHandler[Any] | None:
    """The one handler a ``level`` record of ``logger`` would reach, when it is a plain
    ``StreamHandler`` with a ``JsonFormatter`` and nothing (filters, other handlers) sits
    on the way; else ``None``, and the record goes through ``logging`` as usual."""
    if logger.filters:
        return None
    found: logging.StreamHandler[Any] | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not logging.StreamHandler
                or type(handler.formatter) is not JsonFormatter
                or handler.filters
            ):
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or level < found.level:
        return None
    return found


#: The last second ``utc_millis`` formatted: ``(whole seconds, "YYYY-MM-DDTHH:MM:SS")``.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def utc_millis(timestamp: float) -> str:
    """``datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")``, with
    the date and time of day formatted once a second (every request's log line needs it)."""
    global _last_second
    if not timestamp >= 0:  # before 1970 (or NaN): as datetime does it, uncached
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    # As datetime rounds: to the microsecond, half to even, then cut to the millisecond.
    fraction, whole = math.modf(timestamp)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    # Read once: records may be formatted on other threads, which replace the pair.
    cached = _last_second
    if seconds != cached[0]:
        text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")[:19]
        cached = _last_second = (seconds, text)
    return f"{cached[1]}.{micros // 1000:03d}+00:00"


def _write_line(
    handler: logging.StreamHandler[Any], name: str, level: int, fields: dict[str, Any]
) -> None:
    """What ``JsonFormatter`` and ``handler`` would write for ``logger.log(level,
    "request", extra=fields)``, without building a ``LogRecord``: the same keys, in the same
    order. The request line's fields are all safe to log (none is a secret key)."""
    out: dict[str, Any] = {
        "time": utc_millis(time.time()),
        "level": logging.getLevelName(level),
        "logger": name,
        "message": "request",
        **fields,
    }
    line = dumps_line(out) + handler.terminator
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.flush()
    except Exception:
        handler.handleError(
            logging.makeLogRecord({"name": name, "levelno": level, "msg": "request"})
        )
    finally:
        handler.release()


# -- logs as JSON --------------------------------------------------------------------------

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "color_message", "taskName"}
#: ``extra`` keys whose values are dropped whatever a caller passes: a safety net, not a
#: licence to log credentials.
_SECRET_KEYS: Final = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|cookie|api_?key|admin_?key|credential",
    re.IGNORECASE,
)
#: Loggers that would write URLs or headers of outgoing calls; a geocoder's URL holds the
#: street address being looked up and, for some providers, the API key. And aiosqlite, which
#: at DEBUG writes every statement with its parameters: webhook secrets, addresses. Kept at
#: WARNING whatever GATEWAY_LOG_LEVEL says.
_QUIET_LOGGERS: Final = ("httpx", "httpcore", "geopy", "aiosqlite")


#: The most characters a text field of a log line keeps: an exception quoting a geocoder's
#: megabyte answer, or any text an upstream or a client made huge, is cut in its middle.
MAX_FIELD_CHARS: Final = 8192


def _bounded(text: str) -> str:
    """``text``, or its first and last ``MAX_FIELD_CHARS / 2`` characters when longer."""
    if len(text) <= MAX_FIELD_CHARS:
        return text
    half = MAX_FIELD_CHARS // 2
    return f"{text[:half]}…[{len(text) - 2 * half} characters left out]…{text[-half:]}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, RFC 3339), ``level``, ``logger``,
    ``message``, ``request_id`` while serving a request, the record's ``extra`` fields, and
    ``exception`` with the traceback. Text fields keep at most ``MAX_FIELD_CHARS``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": utc_millis(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _bounded(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in out:
                continue
            if _SECRET_KEYS.search(key):
                value = "[redacted]"
            out[key] = _bounded(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exception"] = _bounded(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = _bounded(self.formatStack(record.stack_info))
        return dumps_line(out)


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.strip().upper())
    if level is None:
        raise SettingsError(
            f"GATEWAY_LOG_LEVEL={name!r} is not a log level; use DEBUG, INFO, WARNING or ERROR"
        )
    return level


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for every logger at ``level`` (GATEWAY_LOG_LEVEL).

    uvicorn's loggers lose their own handlers and propagate here; its access log is
    switched off, since ``RequestObservability`` writes the request lines.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=_level(level), handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, _level(level)))
