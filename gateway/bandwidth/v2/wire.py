"""The v2 API's wire under ``BandwidthV2Client``: JSON bodies, its error documents, answers
read as the project's models, and list reads followed page by page.

A list read asks for ``page_size`` records at a time (``limit``/``offset``) and follows the
pages until one is empty, or until the answer's ``links`` name no ``next`` page. Records
met again on a later page (the list changed while it was read) are kept once; a page of
nothing but records already listed, or more than ``max_pages`` pages, is a carrier whose
list never ends: ``UpstreamParseError``, not a loop. A list whose pages take longer in all
than ``list_deadline`` (or the caller's own deadline) is ``UpstreamTimeout``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from gateway.bandwidth.calls import answered_for
from gateway.bandwidth.client import BandwidthClient
from gateway.bandwidth.errors import (
    CodecError,
    UpstreamError,
    UpstreamParseError,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.bandwidth.exchanges import Body, Operation
from gateway.bandwidth.failures import status_error
from gateway.bandwidth.models import Endpoint, Location, NotificationRecipient, Record
from gateway.bandwidth.upstreams import time_left
from gateway.bandwidth.v2 import mapping
from gateway.bandwidth.v2.models import (
    AddEndpoints,
    GenericError,
    Link,
    Request,
    UpdateAction,
    UpdateEndpoint,
)

__all__ = ["MAX_PAGES", "PAGE_SIZE", "V2Wire"]

M = TypeVar("M", bound=BaseModel)

#: Records asked for per page of a list read (the spec's examples page by 1000).
PAGE_SIZE: Final = 1000
#: The most pages one list read follows (a million records at ``PAGE_SIZE``).
MAX_PAGES: Final = 1000
#: The most seconds one list read may take, all its pages together.
LIST_DEADLINE: Final = 60.0


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


L = TypeVar("L", bound=_Listed)


class V2Wire(BandwidthClient):
    """The JSON wire and paged list reads; the operations are ``BandwidthV2Client``'s."""

    content_type = "application/json"
    #: See the module docstring; an instance may change them (tests do).
    page_size: int = PAGE_SIZE
    max_pages: int = MAX_PAGES
    list_deadline: float = LIST_DEADLINE

    async def _list(
        self,
        op: Operation,
        path: str,
        kind: type[M],
        items: Callable[[M], Sequence[L]],
    ) -> list[L]:
        """Every record of a list read, page by page (see the module docstring)."""
        listed: dict[str, L] = {}
        offset = 0
        until = self._clock() + self.list_deadline
        left = time_left()
        if left is not None:
            until = min(until, self._clock() + left)
        for read in range(self.max_pages):
            if read and self._clock() >= until:
                raise UpstreamTimeout(
                    f"{op.name}: the carrier's list did not end in time ({read} pages of "
                    f"{self.page_size} read)",
                    operation=op.name,
                )
            page = await self._fetch(op, f"{path}?limit={self.page_size}&offset={offset}", kind)
            found = items(page)
            if not found:
                return list(listed.values())
            fresh = [record for record in found if record.id not in listed]
            if not fresh:
                raise UpstreamParseError(
                    f"{op.name}: the page at offset {offset} holds only records already "
                    "listed: the carrier's list does not end",
                    operation=op.name,
                )
            listed.update((record.id, record) for record in fresh)
            offset += len(found)
            links: list[Link] | None = getattr(page, "links", None)
            if links is not None and not any(k.rel == "next" and k.href for k in links):
                return list(listed.values())
        raise UpstreamParseError(
            f"{op.name}: the carrier's list did not end within {self.max_pages} pages of "
            f"{self.page_size}",
            operation=op.name,
        )

    def _encode(self, op: Operation, record: Record) -> bytes:
        return _request(op, record).wire()

    def _refusal(self, response: httpx.Response, root: Body, op: Operation) -> UpstreamError | None:
        return None  # v2 answers errors with error statuses only

    def _answer_error(self, response: httpx.Response, root: Body, op: Operation) -> UpstreamError:
        code = description = None
        try:
            found = GenericError.model_validate(root).errors or []
        except ValidationError:
            found = []
        if found:
            first = found[0]
            code = str(first.code) if first.code is not None else first.type
            description = bounded("; ".join(e.description for e in found))
        return status_error(response, op.name, write=op.write, code=code, description=description)

    @staticmethod
    def _decode(data: bytes) -> Body:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise CodecError(f"not JSON: {exc}") from None

    async def _write(self, op: Operation, path: str, record: Record, *, retryable: bool) -> Body:
        try:
            _request(op, record)
        except (ValidationError, ValueError) as exc:
            raise UpstreamRejected(
                f"{op.name}: the v2 API cannot carry this record: {exc}",
                operation=op.name,
                code="request-invalid",
                description=first_error(exc),
            ) from None
        return await self._call(
            op, path, record, retryable=retryable, conflict_is_success=op.method == "POST"
        )

    async def _fetch(self, op: Operation, path: str, kind: type[M], of: str | None = None) -> M:
        """The answer to a read, as ``kind``; with ``of``, the ID the answer must name."""
        root = await self._call(op, path)
        if root is None:
            raise UpstreamParseError(f"{op.name}: the answer has no body", operation=op.name)
        answer = self._model(kind, root, op.name)
        if of is not None:
            answered_for(of, getattr(answer, "id", None), op.name)
        return answer

    @staticmethod
    def _model(kind: type[M], root: Body, operation: str) -> M:
        try:
            return kind.model_validate(root)
        except ValidationError as exc:
            raise UpstreamParseError(
                f"{operation}: the answer is not a {kind.__name__}: {first_error(exc)}",
                operation=operation,
            ) from None


def _request(op: Operation, record: Record) -> Request:
    """The v2 request body for ``op`` carrying ``record``."""
    if op.name == "addEndpoints" and isinstance(record, Endpoint):
        return AddEndpoints(endpoints=[mapping.endpoint_request(record)])
    if op.name == "updateEndpoint" and isinstance(record, Endpoint):
        return UpdateEndpoint(action=UpdateAction.PROVISION, address_id=record.location_id)
    if op.name == "addAddress" and isinstance(record, Location):
        return mapping.address_request(record)
    if isinstance(record, NotificationRecipient):
        made = {
            "addNotification": mapping.notification_request,
            "addNotificationGroup": mapping.group_request,
            "updateNotificationGroup": mapping.group_join,
        }.get(op.name)
        if made is not None:
            return made(record)
    raise ValueError(f"{op.name} carries no {type(record).__name__}")


def bounded(words: str, limit: int = 500) -> str:
    """The carrier's words, at most ``limit`` characters of them."""
    return words if len(words) <= limit else words[: limit - 1] + "…"


def first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}"
    return str(exc)
