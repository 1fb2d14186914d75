"""What every v2 simulator operation shares: the API's error documents, request bodies
read as the project's models, list pages (``limit``/``offset``) and time stamps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.bandwidth.v2.models import Link, error_document
from gateway.simulator.store import Outcome

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: The API's error types and codes, by HTTP status.
ERRORS: Final[dict[int, tuple[str, int]]] = {
    400: ("bad-request", 205617),
    401: ("authentication-credentials", 206401),
    403: ("resource-permissions", 109107),
    404: ("resource-not-found", 50420),
    405: ("http-method-not-supported", 205621),
    409: ("resource-conflict", 205618),
    413: ("bad-request", 205617),
    429: ("rate-limiting", 32002),
    500: ("internal-server-error", 32030),
    503: ("service-unavailable", 32030),
    504: ("request-timeout", 32030),
}
#: Records per list answer when the request names no ``limit``, and the most one may name
#: (a larger ``limit`` is answered with this many). The spec declares neither a default nor
#: a maximum for its string ``limit``; its examples page by 1000 (``?offset=1000&limit=1000``).
PAGE_LIMIT: Final = 1000


class Refused(Exception):
    def __init__(self, status: int, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.field = field


def v2_error(status: int, description: str, field: str | None = None) -> Outcome:
    kind, code = ERRORS.get(status, ERRORS[400 if status < 500 else 500])
    return Outcome(status, error_document(kind, description, code, field=field).wire())


class Held(Protocol):
    """A record the API keeps under its ``id`` and answers whole."""

    @property
    def id(self) -> str: ...

    def wire(self) -> bytes: ...


H = TypeVar("H", bound=Held)


def added(table: dict[str, H], record: H, what: str) -> Outcome:
    """``record`` kept under its ID (the API's 409 when one is there): ``201`` with it."""
    if record.id in table:
        raise Refused(409, f"{what} {record.id} already exists", "id")
    table[record.id] = record
    return Outcome(201, record.wire(), applied=True, id=record.id)


def answered(table: Mapping[str, H], key: str, what: str) -> Outcome:
    """``GET`` of one record: ``200`` with it, or the API's 404."""
    record = found(table, key, what)
    return Outcome(200, record.wire(), id=record.id)


def found(table: Mapping[str, T], key: str, what: str) -> T:
    """``table[key]``, or the API's 404 naming ``what`` is not there."""
    record = table.get(key)
    if record is None:
        raise Refused(404, f"{what} {key} not found")
    return record


def page(items: list[T], params: Mapping[str, str], path: str) -> tuple[list[T], list[Link]]:
    """The page of ``items`` that ``limit`` and ``offset`` ask for, and its links as in the
    spec's examples (``self``, ``first``, ``last``, ``prev``, ``next``; an empty ``href``
    where there is no such page). A ``limit`` above ``PAGE_LIMIT`` is answered with that."""
    limit = min(PAGE_LIMIT, whole(params, "limit", PAGE_LIMIT, least=1))
    offset = whole(params, "offset", 0, least=0)
    total = len(items)

    def at(start: int | None) -> Link:
        href = "" if start is None else f"{path}?offset={start}&limit={limit}"
        return Link(href=href, method="GET")

    pages = {
        "self": at(offset),
        "first": at(0),
        "last": at(max(0, (total - 1) // limit * limit)),
        "prev": at(max(0, offset - limit) if offset > 0 else None),
        "next": at(offset + limit if offset + limit < total else None),
    }
    links = [link.model_copy(update={"rel": rel}) for rel, link in pages.items()]
    return items[offset : offset + limit], links


def whole(params: Mapping[str, str], name: str, default: int, *, least: int) -> int:
    """A whole-number parameter; the API's 400 naming it when it is not one."""
    given = params.get(name)
    if given is None:
        return default
    if not (given.isascii() and given.isdigit()) or len(given) > 9 or int(given) < least:
        raise Refused(400, f"{name} must be a whole number of at least {least}")
    return int(given)


def read(kind: type[M], body: bytes) -> M:
    """The request body as ``kind``; the API's 400 naming the first field that is wrong."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise Refused(400, f"{where or 'body'}: {message}", where) from None


def as_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def now() -> str:
    return stamp(datetime.now(UTC))


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
