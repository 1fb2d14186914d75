"""The state store's interface: what every replica shares about devices and locations.

A device's row is the binding the gateway means the carrier to hold. ``claim`` decides, in
one transaction across all replicas, whether a report is the newest for its device; the
winner writes the carrier and then ``confirm``\\ s. An unchanged report only ``advance``\\ s
the device's newest observation time. Reconcilers ``lease`` rows so that replicas check
different devices.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self, TypedDict, Unpack, runtime_checkable

from gateway.dlr.binding import Binding


class Claim(NamedTuple):
    """A ``claim``'s answer: ``won, previous, current = await store.claim(...)``.

    ``previous`` is the row before (``None``: the device was new). ``current`` is the row
    after: the claimed binding with its new ``version`` when won, else the newer row that
    refused it (the same as ``previous``).
    """

    won: bool
    previous: Binding | None
    current: Binding


class HistoryKind(enum.StrEnum):
    """What a history row records. Bindings: only what the carrier accepted, and admin
    changes and deletes; never a write the carrier refused."""

    #: The carrier took a report's binding.
    APPLIED = "applied"
    #: The gateway re-wrote a binding the carrier had lost or let regress.
    REPAIRED = "repaired"
    #: An admin wrote the device's endpoint (create or update).
    ADMIN_EDIT = "admin_edit"
    #: An admin deleted the device's endpoint; or (credential ``gateway``) the gateway
    #: deleted it again, a report's write that raced the deletion having created it again.
    DELETED = "deleted"
    #: An admin revoked the device's tokens (``after.revokedBefore``: those issued before).
    TOKENS_REVOKED = "tokens_revoked"
    #: A report's GPS fix contradicted its address (the address was applied without it).
    COORDINATES_CONFLICT = "coordinates_conflict"
    #: The carrier asked where a caller is (``gateway.api.emergency``): what was answered.
    EMERGENCY_QUERY = "emergency_query"
    #: Number ownership (under ``number_key``): a device took an unowned number, an admin
    #: assigned an owner, marked it shared, or released it.
    NUMBER_OWNED = "number_owned"
    NUMBER_ASSIGNED = "number_assigned"
    NUMBER_SHARED = "number_shared"
    NUMBER_RELEASED = "number_released"
    #: Locations (under ``location_key``): admin changes, and one the carrier lost.
    LOCATION_CREATED = "location_created"
    LOCATION_UPDATED = "location_updated"
    LOCATION_DELETED = "location_deleted"
    LOCATION_LOST = "location_lost"
    #: The carrier refused a device's binding after the gateway had answered (a 202 whose
    #: order failed, or a repair's write): the binding stays unconfirmed, the carrier's
    #: words in ``after.carrierError``. Once per claim.
    PROVISIONING_FAILED = "provisioning_failed"
    #: A notification recipient an admin created (under ``RECIPIENTS_KEY``).
    RECIPIENT_CREATED = "recipient_created"


#: History keys of what is not a device. Each is longer than any AEUI (30 characters at
#: most), so no device's history can hold them, and fits the column (64).
_NUMBER_PREFIX = "~telephone-number-ownership/"
_LOCATION_PREFIX = "~carrier-location-admin-changes/"
RECIPIENTS_KEY = "~notification-recipient-admin-changes"


def number_key(telephone_number: str) -> str:
    """The history key of a callback number's ownership."""
    return _NUMBER_PREFIX + telephone_number


def location_key(location_id: str) -> str:
    """The history key of a carrier location (IDs are at most 32 characters)."""
    return _LOCATION_PREFIX + location_id


@dataclass(frozen=True, slots=True)
class NumberState:
    """Who may use a callback number: its owner, unless it is shared."""

    telephone_number: str
    owner: str | None
    shared: bool
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "shared": self.shared}

    def refuses(self, aeui: str) -> bool:
        """Whether ``aeui`` may not use the number (another device owns it alone)."""
        return not self.shared and self.owner is not None and self.owner != aeui


class NumberOwned(Exception):
    """Another device owns this callback number; nothing was written."""

    def __init__(self, telephone_number: str, owner: str) -> None:
        super().__init__(f"{telephone_number} belongs to another device")
        self.telephone_number = telephone_number
        self.owner = owner


class DeviceDeleted(Exception):
    """An admin deleted the device after the claimed report was observed (its tombstone,
    ``Ledger.delete``): the report does not bring it back; nothing was written."""

    def __init__(self, aeui: str, deleted_at: datetime) -> None:
        super().__init__(f"{aeui} was deleted at {deleted_at.isoformat()}")
        self.aeui = aeui
        self.deleted_at = deleted_at


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One history row to append (``Ledger.record``)."""

    aeui: str
    kind: str
    credential: str
    source: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    observed_at: datetime | None

    @staticmethod
    def by_admin(
        key: str,
        kind: str,
        credential: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> HistoryRecord:
        """An admin's change under ``key`` (a device's AEUI, ``location_key`` or
        ``number_key``): source ``admin``, nothing observed."""
        return HistoryRecord(key, kind, credential, "admin", before, after, None)


@dataclass(frozen=True, slots=True)
class HistoryEntry(HistoryRecord):
    """A history row as read back: the record, its ``id`` and when it was appended."""

    id: int
    at: datetime
    from_location_id: str | None
    to_location_id: str | None


@dataclass(frozen=True, slots=True)
class LocationRecord:
    """A location the carrier holds, as the store remembers it (``Ledger.remember_location``)."""

    location_id: str
    address: Mapping[str, Any]
    status: str | None
    latitude: float | None
    longitude: float | None


class LeaseFilters(TypedDict, total=False):
    """Which devices ``StateStore.lease`` may take, of those no one holds a live lease on."""

    #: Only those checked before this instant.
    older_than: datetime | None
    #: Only unconfirmed ones.
    only_unconfirmed: bool
    #: Only those claimed before this instant.
    applied_before: datetime | None
    #: None unconfirmed claimed at or after this instant (their writer is still at work).
    skip_unconfirmed_since: datetime | None


class Ledger(Protocol):
    """What the pipeline needs of the state store (``MemoryLedger`` is one without a database)."""

    async def get(self, aeui: str) -> Binding | None: ...

    async def get_or_deleted(self, aeui: str) -> tuple[Binding | None, datetime | None]:
        """``get``'s row and, when there is none, when an admin deleted the device (its
        tombstone: ``delete``), if one did: one read."""
        ...

    async def claim(self, binding: Binding, *, credential: str, check_number: bool = True) -> Claim:
        """Store ``binding`` (unconfirmed, the next version, the store's time as ``heard_at``)
        unless a newer observation (``newest``; equal ones win) or a newer deletion
        (``DeviceDeleted``) is stored; atomic across replicas, no history until ``confirm``.
        With ``check_number``, ``NumberOwned`` for a number another device owns alone (unless
        ``attested``); an unowned one becomes the device's, recorded in its history."""
        ...

    async def confirm(
        self, aeui: str, version: int, *, record: HistoryRecord | None = None
    ) -> bool:
        """The carrier holds ``version``: mark it confirmed, unless a newer claim replaced it
        (False), appending ``record`` atomically. An overtaken write's record is kept too,
        with its own ``observed_at``, unless it has none, the row is gone or not newer, or a
        newer ``applied`` or ``repaired`` entry is recorded (docs/architecture.md, step 5 of
        "A report's path")."""
        ...

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        """An unchanged report: move ``observed_at`` forward (never back), ``heard_at`` to now.

        False when there is no such row (of ``version``, if given), a newer observation is
        stored (``newest``), or another device now owns the row's number alone.
        """
        ...

    async def delete(self, aeui: str, *, deleted_at: datetime | None = None) -> Binding | None:
        """Forget a device (its endpoint was deleted); answers the row it had.

        With ``deleted_at`` (an admin's deletion) a tombstone keeps the device's order: until
        the history purge removes it, ``claim`` creates the device again only for a binding
        at least as new as the later of ``deleted_at`` and the row's ``newest``.
        """
        ...

    async def bound_to(self, endpoint_id: str, *, limit: int = 2) -> list[Binding]:
        """The devices whose binding is to ``endpoint_id`` (at most ``limit``)."""
        ...

    async def callers(
        self, telephone_number: str, *, limit: int = 20, every_holder: bool = False
    ) -> list[Binding]:
        """The devices bound to ``telephone_number`` that may use it, those attested first,
        then the one heard from last (``every_holder``: whether or not they may)."""
        ...

    async def number(self, telephone_number: str) -> NumberState | None:
        """Who may use the number (``None``: no one owns it)."""
        ...

    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        """An admin's change of a number's owner or sharing (neither: released), recorded in
        its history when it changes; answers the state before and after."""
        ...

    async def release_numbers(self, aeui: str, *, credential: str) -> list[str]:
        """Release every number ``aeui`` owns alone, recorded in each one's history."""
        ...

    async def locations_known(self, location_id: str) -> bool: ...

    async def forget_location(self, location_id: str) -> bool:
        """The carrier no longer holds ``location_id``: every replica stops trusting it."""
        ...

    async def remember_location(self, location: LocationRecord) -> None:
        """Record that the carrier holds ``location.location_id`` (a second record changes
        nothing)."""
        ...

    async def history(
        self, aeui: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[HistoryEntry]:
        """Newest first; pass the last entry's ``id`` as ``before_id`` for the next page."""
        ...

    async def record(self, entry: HistoryRecord) -> int:
        """Append a history row (admin changes, conflicts); answers its ``id``."""
        ...


@runtime_checkable
class StateStore(Ledger, Protocol):
    """The durable state every replica shares (``open_store`` connects to one)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """A cheap round trip; ``StoreUnavailable`` when it fails or is slow."""
        ...

    async def schema_is_current(self) -> bool: ...

    async def upgrade(self) -> None:
        """Migrate this database to head."""
        ...

    async def purge_history(self, older_than: datetime) -> int:
        """Delete history recorded before ``older_than``, and the tombstones of devices
        deleted before it (``delete``); answers how many history rows went."""
        ...

    async def lease(
        self, owner: str, *, limit: int, lease_seconds: float, **filters: Unpack[LeaseFilters]
    ) -> list[Binding]:
        """Take up to ``limit`` devices no one holds a live lease on (and as ``filters``
        say), least recently checked first. No two owners hold one device at once."""
        ...

    async def release(self, aeui: str, owner: str) -> bool: ...

    async def checked(
        self, aeui: str, owner: str, confirmed: bool | None, *, version: int | None = None
    ) -> bool:
        """``owner`` compared the device with the carrier: record when and whether the
        carrier holds it (only if the row is still at ``version``, when given), and release
        the lease. ``confirmed=None``: the check failed (the carrier refused or was
        unavailable), so only when is recorded. False when ``owner`` no longer holds it."""
        ...
