"""The state store's interface: what every replica shares about devices and locations.

A device's row is the binding the gateway means the carrier to hold. ``claim`` decides, in
one transaction across all replicas, whether a report is the newest for its device; the
winner writes the carrier and then ``confirm``\\ s. An unchanged report only ``advance``\\ s
the device's newest observation time. Reconcilers ``lease`` rows so that replicas check
different devices.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, Self


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """A device's binding as stored. ``version`` is bumped by every ``claim`` that wins."""

    aeui: str
    endpoint_id: str
    location_id: str
    address: dict[str, Any] | None
    caller_name: str
    telephone_number: str
    observed_at: datetime
    source: str = "report"
    confirmed: bool = False
    latitude: float | None = None
    longitude: float | None = None
    version: int = 0
    #: ``gps`` or ``street`` when the gateway established ``latitude``/``longitude`` itself
    #: (the device's fix, a street-level geocode); ``None`` when they are the carrier's own.
    #: Not part of the binding's identity (``as_json``): it says how good the coordinates are.
    coordinates_source: str | None = None
    #: The device's fix's accuracy in meters, when ``coordinates_source`` is ``gps``.
    accuracy_meters: float | None = None
    #: When the gateway last heard from the device (its own clock): a claim, or an
    #: unchanged report. ``None`` when not known (a binding not read from the store).
    heard_at: datetime | None = None
    #: The device's token attested ``telephone_number`` (its ``phone_number`` claim).
    attested: bool = False

    def as_json(self) -> dict[str, Any]:
        """The binding as recorded in history (camelCase, without bookkeeping)."""
        return {
            "endpointId": self.endpoint_id,
            "locationId": self.location_id,
            "address": self.address,
            "callerName": self.caller_name,
            "telephoneNumber": self.telephone_number,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "precision": self.coordinates_source,
        }

    def same_binding(self, other: StoredBinding | None) -> bool:
        """Whether ``other`` binds the device the same way (times and bookkeeping aside)."""
        return other is not None and self.as_json() == other.as_json()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    aeui: str
    at: datetime
    credential: str
    source: str
    kind: str
    observed_at: datetime | None
    from_location_id: str | None
    to_location_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Claim(NamedTuple):
    """A ``claim``'s answer: ``won, previous, current = await store.claim(...)``.

    ``previous`` is the row before (``None``: the device was new). ``current`` is the row
    after: the claimed binding with its new ``version`` when won, else the newer row that
    refused it (the same as ``previous``).
    """

    won: bool
    previous: StoredBinding | None
    current: StoredBinding


class HistoryKind(enum.StrEnum):
    """What a history row records. Bindings: only what the carrier accepted, and admin
    changes and deletes; never a write the carrier refused."""

    #: The carrier took a report's binding.
    APPLIED = "applied"
    #: The gateway re-wrote a binding the carrier had lost or let regress.
    REPAIRED = "repaired"
    #: An admin wrote the device's endpoint (create or update).
    ADMIN_EDIT = "admin_edit"
    #: An admin deleted the device's endpoint.
    DELETED = "deleted"
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


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One history row to append (``StateStore.record_many``)."""

    aeui: str
    kind: str
    credential: str
    source: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    observed_at: datetime | None


class StateStore(abc.ABC):
    """Durable state shared by every replica; ``StateStore.open(url)`` picks the backend."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        create: bool = False,
        check_schema: bool = True,
        clock: Callable[[], datetime] | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        ping_timeout: float = 2.0,
        max_batch: int = 500,
        linger: float = 0.0,
    ) -> StateStore:
        """Connect to ``url``.

        ``create``: migrate to head first (the embedded SQLite default, tests). Otherwise,
        unless ``check_schema`` is false, refuse a schema that is not current with
        ``SchemaNotCurrent``. A database that cannot be reached raises ``StoreUnavailable``.
        """
        from gateway.store.sql import SqlStateStore

        return await SqlStateStore.connect(
            url,
            create=create,
            check_schema=check_schema,
            clock=clock,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            ping_timeout=ping_timeout,
            max_batch=max_batch,
            linger=linger,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """A cheap round trip; ``StoreUnavailable`` when it fails or is slow."""

    @abc.abstractmethod
    async def schema_is_current(self) -> bool: ...

    @abc.abstractmethod
    async def upgrade(self) -> None:
        """Migrate this database to head."""

    # -- devices -------------------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, aeui: str) -> StoredBinding | None: ...

    @abc.abstractmethod
    async def claim(
        self, binding: StoredBinding, *, credential: str, check_number: bool = True
    ) -> Claim:
        """Store ``binding`` unless a newer observation is stored (equal ones win).

        Atomic across replicas. A winning claim stores ``confirmed=False``, the next
        version and the store's time as ``heard_at``; ``binding.version``,
        ``binding.confirmed`` and ``binding.heard_at`` are ignored. It records no history:
        the carrier has not taken the binding yet (``confirm`` records it).

        With ``check_number``, the binding's callback number is checked in the same
        transaction: ``NumberOwned`` when another device owns it alone and the binding is
        not ``attested``; an unowned number becomes the device's (recorded in the number's
        history, by ``credential``).
        """

    @abc.abstractmethod
    async def confirm(
        self, aeui: str, version: int, *, record: HistoryRecord | None = None
    ) -> bool:
        """The carrier holds ``version``: mark it confirmed, unless a newer claim replaced it.

        ``record`` (what the carrier took) is appended to the history with the confirmation,
        atomically: history follows the order of claims. A write a newer claim overtook is
        not recorded here: whoever claimed it checks the carrier (a repair, recorded as such
        if the overtaken write landed last).
        """

    @abc.abstractmethod
    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        """An unchanged report: move the device's ``observed_at`` forward (never back), and
        its ``heard_at`` to now.

        True when the stored row (of ``version``, if given) is now at least as new as
        ``observed_at``; false when there is no such row, a newer observation is stored
        (the report is then superseded, or the binding changed: read it again), or another
        device now owns the row's number alone (the full path refuses it). Concurrent
        calls are group-committed into one statement.
        """

    @abc.abstractmethod
    async def delete(self, aeui: str) -> StoredBinding | None:
        """Forget a device (its endpoint was deleted); answers the row it had."""

    @abc.abstractmethod
    async def callers(
        self, telephone_number: str, *, limit: int = 20, every_holder: bool = False
    ) -> list[StoredBinding]:
        """The devices whose callback number is ``telephone_number`` (E.164) and that may
        use it (its owner, any holder of a shared or unowned number, a device whose token
        attested it), those attested first, then the one heard from last: one indexed read,
        for the emergency-call location query. ``every_holder``: whether or not they may."""

    # -- callback numbers ----------------------------------------------------------------

    @abc.abstractmethod
    async def number(self, telephone_number: str) -> NumberState | None:
        """Who may use the number (``None``: no one owns it)."""

    @abc.abstractmethod
    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        """An admin's change: the number's owner and whether it is shared; both ``None`` and
        false release it. Recorded in the number's history when it changes; answers the
        state before and after."""

    @abc.abstractmethod
    async def release_numbers(self, aeui: str, *, credential: str) -> list[str]:
        """Release every number ``aeui`` owns alone (its endpoint was deleted), recorded in
        each number's history; answers them."""

    # -- locations -----------------------------------------------------------------------

    @abc.abstractmethod
    async def locations_known(self, location_id: str) -> bool: ...

    @abc.abstractmethod
    async def forget_location(self, location_id: str) -> bool:
        """The carrier no longer holds ``location_id``: every replica stops trusting it."""

    @abc.abstractmethod
    async def remember_location(
        self,
        location_id: str,
        address: Mapping[str, Any],
        status: str | None,
        latitude: float | None,
        longitude: float | None,
    ) -> None:
        """Record that the carrier holds ``location_id`` (a second record changes nothing)."""

    # -- history -------------------------------------------------------------------------

    @abc.abstractmethod
    async def history(
        self, aeui: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[HistoryEntry]:
        """Newest first; pass the last entry's ``id`` as ``before_id`` for the next page."""

    @abc.abstractmethod
    async def record(
        self,
        aeui: str,
        *,
        kind: str,
        credential: str,
        source: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        observed_at: datetime | None,
    ) -> int:
        """Append a history row (admin changes, conflicts); answers its ``id``."""

    async def record_many(self, records: Sequence[HistoryRecord]) -> None:
        """Append several history rows; backends may write them in one transaction."""
        for r in records:
            await self.record(
                r.aeui,
                kind=r.kind,
                credential=r.credential,
                source=r.source,
                before=r.before,
                after=r.after,
                observed_at=r.observed_at,
            )

    @abc.abstractmethod
    async def purge_history(self, older_than: datetime) -> int:
        """Delete history recorded before ``older_than``; answers how many rows went."""

    # -- reconciliation ------------------------------------------------------------------

    @abc.abstractmethod
    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        older_than: datetime | None = None,
        only_unconfirmed: bool = False,
        applied_before: datetime | None = None,
        skip_unconfirmed_since: datetime | None = None,
    ) -> list[StoredBinding]:
        """Take up to ``limit`` devices no one holds a live lease on, least recently checked
        first (never checked before all), optionally only those last checked before
        ``older_than``, only unconfirmed ones, only those whose binding was claimed
        before ``applied_before``, and none unconfirmed claimed at or after
        ``skip_unconfirmed_since`` (their writer is still at work). No two owners hold one
        device at once."""

    @abc.abstractmethod
    async def release(self, aeui: str, owner: str) -> bool: ...

    @abc.abstractmethod
    async def checked(
        self, aeui: str, owner: str, confirmed: bool, *, version: int | None = None
    ) -> bool:
        """``owner`` compared the device with the carrier: record when, whether the carrier
        holds it (applied only if the row is still at ``version``, when given), and release
        the lease. False when ``owner`` no longer holds it."""
