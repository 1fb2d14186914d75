"""JSON in and out: bounded body reading, and the carrier's records as camelCase JSON.

Reading is strict: unknown fields, wrong types and over-long strings are refused with
field-level errors, so that nothing the caller did not mean reaches the carrier.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import Problem
from gateway.dlr.errors import FieldError
from gateway.dlr.patterns import CONTROL_CHARACTERS, SURROGATES
from gateway.records import record_to_json as record_to_json

#: Longest string accepted in any field, unless a field has a tighter limit below.
MAX_STRING = 255

#: The carrier's published limits, by field name.
FIELD_LIMITS = {
    "alternate_end_user_id": 30,
    "caller_name": 50,
    "address_line2": 60,
    "location_id": 32,
    "endpoint_id": 64,
    "id": 64,
    "telephone_number": 32,
    "phone_number": 32,
    "description": 255,
}

#: What an ID in a URL path may look like; anything else cannot exist upstream.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,63}")
LOCATION_ID_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")

#: Lone surrogates as well (see ``gateway.dlr.patterns``).
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}{SURROGATES}]")


#: The slowest a large body may arrive, bytes per second (``BodyDeadline``).
MIN_BODY_RATE = 16 * 1024


@dataclass(eq=False)
class BodyDeadline:
    """ASGI middleware: a request's body must arrive within ``seconds`` of its first read,
    or at ``MIN_BODY_RATE`` when its declared length needs longer; else ``receive`` raises
    ``Problem(408)`` where the handler reads it. A client trickling a body (a slowloris)
    otherwise holds its connection and its handler for as long as it likes."""

    app: ASGIApp
    seconds: float

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.seconds
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and len(value) < 16:
                budget = max(budget, int(value) / MIN_BODY_RATE)
        deadline: float | None = None
        complete = False

        async def within_deadline() -> Message:
            nonlocal deadline, complete
            if complete:
                return await receive()  # a wait for the disconnect: not the body's
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + budget
            waiting: Awaitable[Message] = receive()
            answered = False
            if inspect.iscoroutine(waiting):
                # Nearly always the body is there already: the first step answers it, and
                # no timer is needed. Only a receive that waits is bounded by one.
                try:
                    pending = waiting.send(None)
                except StopIteration as done:
                    message: Message = done.value
                    answered = True
                else:
                    waiting = _Resumed(waiting, pending)
            if not answered:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await waiting
                except TimeoutError:
                    raise Problem(
                        408, f"The body did not arrive within {budget:.0f} seconds."
                    ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, within_deadline, send)


class _Resumed:
    """Awaits a coroutine whose first step already ran and yielded ``pending``: the rest of
    it, as ``await`` would have run it (what the task sends or throws in is passed on)."""

    __slots__ = ("_coroutine", "_pending")

    def __init__(self, coroutine: Coroutine[Any, Any, Message], pending: Any) -> None:
        self._coroutine = coroutine
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Message]:
        coroutine, pending = self._coroutine, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    pending = coroutine.throw(exc)
                except StopIteration as done:
                    return cast(Message, done.value)
            else:
                try:
                    pending = coroutine.send(sent)
                except StopIteration as done:
                    return cast(Message, done.value)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 past ``max_bytes`` without reading it all.

    Read from the ASGI channel itself, as ``request.stream()`` would read it (the same
    messages, ``ClientDisconnect`` on a disconnect, the stream then consumed) but without
    its async generator: nearly every body arrives whole in one message.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        # ASCII digits only: str.isdigit() alone also takes superscripts ("\u00b2"), which
        # int() refuses.
        if not (declared.isascii() and declared.isdigit()):
            raise Problem(400, "Content-Length is not a number.")
        # Compared by length first: int() refuses more than 4300 digits.
        digits = declared.lstrip("0") or "0"
        if len(digits) > len(str(max_bytes)) or int(digits) > max_bytes:
            raise Problem(413, f"The body exceeds the {max_bytes}-byte limit.")
    if request._stream_consumed or hasattr(request, "_body"):
        return await _read_stream(request, max_bytes)  # read before: as Starlette keeps it
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise Problem(413, f"The body exceeds the {max_bytes}-byte limit.")
                chunks.append(chunk)
            if not message.get("more_body", False):
                request._stream_consumed = True
                break
        elif message["type"] == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_stream(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"The body exceeds the {max_bytes}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int) -> Any:
    """The JSON body: 415 for another media type, 413 when too large, 422 when malformed."""
    if not is_json(request.headers.get("content-type", "")):
        raise Problem(415, "Send the body as application/json.")
    return decode_json(await read_body(request, max_bytes))


def decode_json(body: bytes) -> Any:
    """``body`` decoded as JSON, or 422 saying what is wrong with it."""
    try:
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        message = "nested too deeply"
    except json.JSONDecodeError as exc:
        message = exc.msg
    except UnicodeDecodeError:
        message = "not UTF-8 text"
    except _RepeatedMember as exc:
        # Valid JSON to RFC 8259, whose readers disagree on which value counts.
        detail = "The body names a member more than once."
        raise Problem(422, detail, errors=[FieldError("body", str(exc))]) from None
    except _NotANumber as exc:
        message = str(exc)
    except ValueError:
        # Python refuses integer literals of more than 4300 digits (CVE-2020-10735).
        message = "a number has too many digits"
    raise Problem(422, "The body is not valid JSON.", errors=[FieldError("body", message)])


class _NotANumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python reads them, JSON has no such numbers."""


def _refuse_constant(name: str) -> Any:
    raise _NotANumber(f"{name} is not a JSON number")


class _RepeatedMember(ValueError):
    """An object naming one member twice: ``json`` would keep the last silently, so that a
    report read by something else on its way (a proxy, a log) could say another address."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                break
            seen.add(name)
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise _RepeatedMember(f'the member "{shown}" appears more than once in one object')
    return members


#: One decoder for every body (``json.loads`` with options builds one a call).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_members)


def require_object(data: Any, where: str = "body") -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise Problem(
            422,
            "The body must be a JSON object.",
            errors=[FieldError(where, "expected an object")],
        )
    return data


def check_string(value: Any, where: str, limit: int = MAX_STRING) -> tuple[str | None, str | None]:
    """``(value, None)`` when ``value`` is an acceptable string, else ``(None, reason)``."""
    if not isinstance(value, str):
        return None, "expected a string"
    if len(value) > limit:
        return None, f"at most {limit} characters"
    if _CONTROL.search(value):
        return None, "contains control characters"
    return value, None


@dataclass(frozen=True, slots=True)
class ReportSource:
    """A report body as read from the wire, whatever its format.

    ``body`` has the JSON API's shape, so that one parser checks every format the same way;
    ``names`` says how the sender called each field (a PIDF-LO's ``civicAddress.PC`` for
    ``address.zip``), so that errors name what the sender wrote. ``errors`` and ``warnings``
    are what reading the format itself found.
    """

    body: Any
    names: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()

    def name(self, path: str) -> str:
        """The sender's name for a field path: the longest known prefix's, else the path."""
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            found = self.names.get(".".join(parts[:end]))
            if found is not None:
                return found
        return path

    def renamed(self, problems: Sequence[FieldError]) -> list[FieldError]:
        return [FieldError(self.name(p.field), p.message) for p in problems]
