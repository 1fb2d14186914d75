"""Admin sync: what an admin changes at the carrier becomes the devices' desired state,
recorded in their history; callback numbers assigned, shared or released."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.bandwidth.models import Endpoint
from gateway.concurrency import KeyedLocks
from gateway.dlr.binding import UNKNOWN_OBSERVED_AT, Binding
from gateway.dlr.ledger import Ledger, MemoryLedger
from gateway.dlr.pipeline.knowledge import Knowledge
from gateway.dlr.pipeline.records import endpoint_json, taken
from gateway.store.base import (
    DeviceDeleted,
    HistoryEntry,
    HistoryKind,
    HistoryRecord,
    NumberOwned,
    NumberState,
    location_key,
)


def _written_since(before: Binding | None, replaced: Binding | None) -> bool:
    """Whether the device's row changed between ``before`` (read before an admin's write to
    the carrier) and ``replaced`` (the row the admin's claim replaced): another write was
    claimed or confirmed meanwhile, perhaps at another replica."""
    if before is None or replaced is None:
        return before is not replaced
    return (before.version, before.confirmed) != (replaced.version, replaced.confirmed)


@dataclass(slots=True)
class AdminSync:
    """Admin edits and deletions, and callback-number ownership."""

    ledger: Ledger
    known: Knowledge
    locks: KeyedLocks[str]
    #: The gateway's own time: when an admin deleted a device (its tombstone's).
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: A check that the carrier holds the device's desired binding, written back if not
    #: (``Repairs.maybe_applied``): after an admin's edit that another write raced.
    recheck: Callable[[str], None] | None = None

    async def check_number(self, alternate_end_user_id: str, telephone_number: str) -> None:
        """``NumberOwned`` when another device owns the number alone: an admin's endpoint
        follows the devices' rule, checked before it is written to the carrier."""
        state = await self.ledger.number(telephone_number)
        if state is not None and state.refuses(alternate_end_user_id):
            assert state.owner is not None
            raise NumberOwned(telephone_number, state.owner)

    async def before_edit(self, alternate_end_user_id: str) -> Binding | None:
        """The device's row, read before an admin writes its endpoint at the carrier: what
        ``admin_edited`` is given as ``before``."""
        return await self.ledger.get(alternate_end_user_id)

    async def admin_edited(
        self, endpoint: Endpoint, *, credential: str, before: Binding | None
    ) -> None:
        """An admin wrote this endpoint at the carrier: make it the device's desired binding,
        recorded in its history; the carrier is checked again when another write may have
        landed after the admin's (docs/architecture.md, "A report's path", step 5)."""
        aeui = endpoint.alternate_end_user_id
        if not aeui or not endpoint.location_id or not endpoint.endpoint_id:
            return
        async with self.locks.hold(aeui):
            self.known.distrust(aeui)
            self.known.reads.forget(aeui)
            previous = await self.ledger.get(aeui)
            # The device's newest report time and order (a deleted device's: its deletion's)
            # are kept, so the reconciler does not undo the edit and the next (newer) report
            # applies as usual; on the same location, so are its address and coordinates.
            # Its number is held as a report's is (``NumberOwned`` in a race for it).
            edited = Binding(
                aeui=aeui,
                carrier_endpoint_id=endpoint.endpoint_id,
                location_id=endpoint.location_id,
                address=None,
                caller_name=endpoint.caller_name or "",
                telephone_number=endpoint.telephone_number or "",
                observed_at=previous.observed_at if previous is not None else UNKNOWN_OBSERVED_AT,
                source="admin",
                ordered_at=previous.ordered_at if previous is not None else None,
            )
            if previous is not None and previous.location_id == edited.location_id:
                edited = dataclasses.replace(edited, address=previous.address)
                edited = edited.with_coordinates_of(previous)
            if previous is not None and previous.telephone_number == edited.telephone_number:
                edited = dataclasses.replace(edited, attested=previous.attested)
            undeleted = False
            try:
                claim = await self.ledger.claim(edited, credential=credential)
            except DeviceDeleted as exc:
                # Created again by an admin after its deletion: ordered from the deletion on.
                edited = dataclasses.replace(edited, ordered_at=exc.deleted_at)
                claim = await self.ledger.claim(edited, credential=credential)
                # A repair deleting the endpoint a late write re-created for the deleted
                # device may have found the admin's endpoint there, before this claim.
                undeleted = True
            if claim.won:
                record = taken(HistoryKind.ADMIN_EDIT, previous, claim.current, credential)
                await self.ledger.confirm(aeui, claim.current.version, record=record)
                self.known.learn(dataclasses.replace(claim.current, confirmed=True))
            # Written at the carrier before this claim: a report's write claimed before it
            # may have landed after the admin's and been confirmed before this claim, and
            # nothing else would notice. One confirmed after it is refused and checks itself.
            raced = not claim.won or undeleted or _written_since(before, claim.previous)
        if raced and self.recheck is not None:
            self.recheck(aeui)

    async def admin_deleted(
        self,
        alternate_end_user_id: str,
        endpoint: Endpoint,
        *,
        credential: str,
        before: Binding | None,
    ) -> None:
        """An admin deleted the device's endpoint: forget its binding (its tombstone keeps
        its order: ``Ledger.delete``), release the numbers it owned, and record both; the
        carrier is checked again when a report's write may have raced the deletion
        (docs/architecture.md, "A report's path", step 5)."""
        aeui = alternate_end_user_id
        async with self.locks.hold(aeui):
            self.known.distrust(aeui)
            self.known.reads.forget(aeui)
            row = await self.ledger.delete(aeui, deleted_at=self.wall_clock())
            self.known.forget_caller(aeui)
            recorded = endpoint_json(endpoint) if row is None else row.as_json()
            await self.admin_record(aeui, HistoryKind.DELETED, recorded, None, credential)
            await self.ledger.release_numbers(aeui, credential=credential)
            # A report's write confirmed before the tombstone may have landed after the
            # carrier's endpoint was deleted; one confirmed after it is refused and checks.
            raced = _written_since(before, row)
        if raced and self.recheck is not None:
            self.recheck(aeui)

    async def location_deleted(
        self, location_id: str, before: Mapping[str, Any] | None, *, credential: str
    ) -> None:
        """An admin deleted a location at the carrier: no replica trusts it any longer, so a
        report at its address creates it again; recorded under ``location_key``."""
        self.known.forget_location(location_id)
        await self.ledger.forget_location(location_id)
        await self.admin_record(
            location_key(location_id), HistoryKind.LOCATION_DELETED, before, None, credential
        )

    async def admin_record(
        self,
        key: str,
        kind: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        credential: str,
    ) -> None:
        """An admin's change, in the history under ``key`` (a device's, or ``location_key``)."""
        await self.ledger.record(HistoryRecord.by_admin(key, kind, credential, before, after))

    # -- callback numbers ------------------------------------------------------------------

    async def number(self, telephone_number: str) -> NumberState | None:
        return await self.ledger.number(telephone_number)

    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        """An admin assigns, shares or releases a number (``StateStore.set_number``). This
        replica's caller index stops answering devices that may no longer use it."""
        before, after = await self.ledger.set_number(
            telephone_number, owner=owner, shared=shared, credential=credential
        )
        if after is not None and self.known.callers is not None:
            self.known.callers.restrict(after)
        return before, after

    async def holders(self, telephone_number: str, *, limit: int = 100) -> list[Binding]:
        """Every device holding the number in the state store, freshest first."""
        return await self.ledger.callers(telephone_number, every_holder=True, limit=limit)

    async def bound_to(self, endpoint_id: str) -> list[Binding]:
        """The devices the gateway binds to ``endpoint_id`` (a few at most)."""
        return await self.ledger.bound_to(endpoint_id)

    async def devices_with(self, telephone_number: str, *, limit: int) -> list[Binding]:
        """Devices whose callback number this is: the state store's, or without one the
        caller index's."""
        if isinstance(self.ledger, MemoryLedger):
            callers = self.known.callers
            return [] if callers is None else callers.lookup(telephone_number)
        return await self.ledger.callers(telephone_number, limit=limit)

    async def stored(self, alternate_end_user_id: str) -> Binding | None:
        """The device's desired binding as the state store keeps it (``None``: none, or
        deleted)."""
        return await self.ledger.get(alternate_end_user_id)

    async def knows_location(self, location_id: str) -> bool:
        """Whether the gateway records the carrier as holding the location (created or found
        for a report, or imported)."""
        return await self.ledger.locations_known(location_id)

    async def history(self, key: str, *, limit: int, before_id: int | None) -> list[HistoryEntry]:
        """One page of the history under ``key``, newest first (none without a store)."""
        return await self.ledger.history(key, limit=limit, before_id=before_id)
