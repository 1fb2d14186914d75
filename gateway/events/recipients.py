"""The carrier's notification recipients as email addresses, for the Kari's Law email.

The carrier's records are read when an email goes out, at most once per ``ttl`` seconds
(one read for every delivery waiting on it), never on the call-time query's path. What the
carrier answers is not trusted: only plain ASCII addresses are kept (``local@domain``, the
local part RFC 5322's dot-atom, the domain dot-separated letters, digits and hyphens; at most
254 characters), duplicates once, at most ``MAX_RECIPIENTS``. One address with DEL, a C1
control or a non-ASCII character would fail the email to every recipient on every attempt
(aiosmtplib refuses the controls; a server without SMTPUTF8 refuses the whole message), and
a group (``name:``) or comment would be read as another address: they are left out.
A failed read fails the delivery, which is retried with backoff; the last list read is
used meanwhile if there is one. With none, the failure answers every delivery waiting on it
and those that come within ``retry_failed`` seconds: one read, not one per delivery, of a
carrier already in trouble.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from gateway.bandwidth.models import NotificationRecipientListResponse

log = logging.getLogger("gateway.events")

#: Addresses one email goes to at most (the carrier's list is untrusted).
MAX_RECIPIENTS = 100
#: Seconds the carrier's list is reused before it is read again.
RECIPIENTS_TTL = 300.0
#: Seconds before a failed re-read is tried again (the last list is used meanwhile).
RETRY_READ = 30.0
_MAX_ADDRESS = 254
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")


class RecipientsUnavailable(Exception):
    """The carrier's recipients could not be read, or none of them has an email address."""


class ListsRecipients(Protocol):
    async def list_notification_recipients(self) -> NotificationRecipientListResponse: ...


def plain_addresses(candidates: Iterable[str | None]) -> tuple[str, ...]:
    """The usable email addresses among ``candidates``, each once, in order, bounded."""
    kept: dict[str, None] = {}
    for address in candidates:
        if address is None:
            continue
        address = address.strip()
        if len(address) <= _MAX_ADDRESS and _PLAIN.fullmatch(address):
            kept.setdefault(address, None)
        if len(kept) == MAX_RECIPIENTS:
            break
    return tuple(kept)


@dataclass(eq=False)
class CarrierRecipients:
    """Calling it gives the email addresses of the carrier's notification recipients."""

    carrier: ListsRecipients
    _: KW_ONLY
    ttl: float = RECIPIENTS_TTL
    timeout: float = 10.0
    retry_failed: float = RETRY_READ
    clock: Callable[[], float] = time.monotonic
    _known: tuple[str, ...] | None = field(default=None, init=False)
    #: Why the last read failed, while no list was ever read (until ``_due_at``).
    _failed: str | None = field(default=None, init=False)
    _due_at: float = field(default=0.0, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def __call__(self) -> tuple[str, ...]:
        async with self._lock:
            if self._failed is not None and self.clock() < self._due_at:
                raise RecipientsUnavailable(self._failed)
            if self._known is None or self.clock() >= self._due_at:
                await self._read()
            assert self._known is not None
            if not self._known:
                raise RecipientsUnavailable(
                    "the carrier holds no notification recipient with an email address"
                )
            return self._known

    async def _read(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                found = await self.carrier.list_notification_recipients()
        except Exception as exc:
            if self._known is None:
                self._failed = (
                    f"the carrier's notification recipients could not be read "
                    f"({type(exc).__name__})"
                )
                self._due_at = self.clock() + self.retry_failed
                raise RecipientsUnavailable(self._failed) from None
            log.warning(
                "carrier notification recipients not re-read; using the last list",
                extra={"error": type(exc).__name__},
            )
            self._due_at = self.clock() + min(self.ttl, RETRY_READ)
            return
        self._failed = None
        self._known = plain_addresses(r.email_address for r in found.notification_recipients)
        self._due_at = self.clock() + self.ttl
