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
    APPLIED = "applied"
    REPAIRED = "repaired"
    ADMIN_EDIT = "admin_edit"
    DELETED = "deleted"
    #: The carrier asked where a caller is (``gateway.api.emergency``): what was answered.
    EMERGENCY_QUERY = "emergency_query"


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
        self, binding: StoredBinding, *, credential: str, kind: str = HistoryKind.APPLIED
    ) -> Claim:
        """Store ``binding`` unless a newer observation is stored (equal ones win).

        Atomic across replicas. A winning claim stores ``confirmed=False`` and the next
        version, and appends a history row of ``kind`` in the same transaction when the
        binding changed. ``binding.version`` and ``binding.confirmed`` are ignored.
        """

    @abc.abstractmethod
    async def confirm(self, aeui: str, version: int) -> bool:
        """The carrier holds ``version``: mark it confirmed, unless a newer claim replaced it."""

    @abc.abstractmethod
    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        """An unchanged report: move the device's ``observed_at`` forward (never back).

        True when the stored row (of ``version``, if given) is now at least as new as
        ``observed_at``; false when there is no such row or a newer observation is stored
        (the report is then superseded, or the binding changed: read it again). Concurrent
        calls are group-committed into one statement.
        """

    @abc.abstractmethod
    async def delete(self, aeui: str) -> StoredBinding | None:
        """Forget a device (its endpoint was deleted); answers the row it had."""

    @abc.abstractmethod
    async def callers(self, telephone_number: str, *, limit: int = 20) -> list[StoredBinding]:
        """The devices whose callback number is ``telephone_number`` (E.164), newest
        ``observed_at`` first: one indexed read, for the emergency-call location query."""

    # -- locations -----------------------------------------------------------------------

    @abc.abstractmethod
    async def locations_known(self, location_id: str) -> bool: ...

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
        """Append a history row (repairs, admin edits); answers its ``id``."""

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
