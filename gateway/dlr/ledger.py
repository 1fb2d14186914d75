"""``MemoryLedger``: the ``Ledger`` (``gateway.store.base``) without a database.

The same answers as the state store, in bounded process memory, for a gateway run without
a database (tests and benchmarks): order is kept per process and forgotten on restart.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from cachetools import LRUCache

from gateway.dlr.binding import Binding, newest
from gateway.store.base import (
    Claim,
    DeviceDeleted,
    HistoryEntry,
    HistoryRecord,
    Ledger,
    LocationRecord,
    NumberOwned,
    NumberState,
)

__all__ = ["Ledger", "MemoryLedger"]


class MemoryLedger:
    """``Ledger`` in bounded memory; same answers as the state store, one process only, and
    no history (there is nowhere to read it from)."""

    def __init__(self, maxsize: int = 200_000) -> None:
        self._rows: LRUCache[str, Binding] = LRUCache(maxsize)
        #: Unconfirmed rows, outside the LRU until confirmed or replaced: evicting one would
        #: forget that a late write may still land, and let an older report win the device.
        #: They are few (writes in flight or unsettled). Tombstones and number ownership are
        #: bounded as the rows are; a tombstone goes once its device, created again, is
        #: confirmed (its row, once evicted, must not read as a deleted device's).
        self._pinned: dict[str, Binding] = {}
        self._locations: LRUCache[str, bool] = LRUCache(maxsize)
        self._numbers: LRUCache[str, NumberState] = LRUCache(maxsize)
        self._tombstones: LRUCache[str, datetime] = LRUCache(maxsize)

    def _row(self, aeui: str) -> Binding | None:
        pinned = self._pinned.get(aeui)
        return pinned if pinned is not None else self._rows.get(aeui)

    def _put(self, row: Binding) -> None:
        if row.confirmed:
            self._pinned.pop(row.aeui, None)
            self._rows[row.aeui] = row
        else:
            self._rows.pop(row.aeui, None)
            self._pinned[row.aeui] = row

    @property
    def pinned(self) -> int:
        """How many unconfirmed rows are held outside the LRU."""
        return len(self._pinned)

    async def get(self, aeui: str) -> Binding | None:
        return self._row(aeui)

    async def get_or_deleted(self, aeui: str) -> tuple[Binding | None, datetime | None]:
        row = self._row(aeui)
        return row, None if row is not None else self._tombstones.get(aeui)

    async def claim(self, binding: Binding, *, credential: str, check_number: bool = True) -> Claim:
        previous = self._row(binding.aeui)
        if previous is not None and newest(binding) < newest(previous):
            return Claim(False, previous, previous)
        deleted_at = self._tombstones.get(binding.aeui) if previous is None else None
        if deleted_at is not None and newest(binding) < deleted_at:
            raise DeviceDeleted(binding.aeui, deleted_at)
        now = datetime.now(UTC)
        if check_number:
            number = binding.telephone_number
            state = self._numbers.get(number)
            if state is None:
                self._numbers[number] = NumberState(number, binding.aeui, False, now)
            elif not binding.attested and state.refuses(binding.aeui):
                assert state.owner is not None
                raise NumberOwned(number, state.owner)
        version = (previous.version if previous is not None else 0) + 1
        current = dataclasses.replace(binding, confirmed=False, version=version, heard_at=now)
        self._put(current)
        return Claim(True, previous, current)

    async def confirm(
        self, aeui: str, version: int, *, record: HistoryRecord | None = None
    ) -> bool:
        # ``record`` is not kept (nor an overtaken write's): there is no history here.
        row = self._row(aeui)
        if row is None or row.version != version:
            return False
        self._put(dataclasses.replace(row, confirmed=True))
        # Created again after its deletion, and the carrier took it: no longer deleted. Its
        # row orders it; evicted, it is not taken for a deleted device (whose repair
        # deletes the endpoint the carrier holds for it).
        self._tombstones.pop(aeui, None)
        return True

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        row = self._row(aeui)
        if row is None or (version is not None and row.version != version):
            return False
        if observed_at < newest(row) or not self._may_use(row):
            return False
        self._put(dataclasses.replace(row, observed_at=observed_at, heard_at=datetime.now(UTC)))
        return True

    def _may_use(self, row: Binding) -> bool:
        state = self._numbers.get(row.telephone_number)
        return row.attested or state is None or not state.refuses(row.aeui)

    async def delete(self, aeui: str, *, deleted_at: datetime | None = None) -> Binding | None:
        pinned = self._pinned.pop(aeui, None)
        row = self._rows.pop(aeui, None)
        gone = pinned if pinned is not None else row
        if deleted_at is not None:
            stamps = [deleted_at, self._tombstones.get(aeui, deleted_at)]
            if gone is not None:
                stamps.append(newest(gone))
            self._tombstones[aeui] = max(stamps)
        return gone

    async def bound_to(self, endpoint_id: str, *, limit: int = 2) -> list[Binding]:
        rows = [*self._pinned.values(), *self._rows.values()]
        return [row for row in rows if row.endpoint_id == endpoint_id][:limit]

    async def locations_known(self, location_id: str) -> bool:
        return location_id in self._locations

    async def remember_location(self, location: LocationRecord) -> None:
        self._locations[location.location_id] = True

    async def forget_location(self, location_id: str) -> bool:
        return self._locations.pop(location_id, None) is not None

    async def number(self, telephone_number: str) -> NumberState | None:
        return self._numbers.get(telephone_number)

    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        before = self._numbers.pop(telephone_number, None)
        after = None
        if owner is not None or shared:
            after = NumberState(telephone_number, owner, shared, datetime.now(UTC))
            self._numbers[telephone_number] = after
        return before, after

    async def release_numbers(self, aeui: str, *, credential: str) -> list[str]:
        owned = sorted(n for n, s in self._numbers.items() if s.owner == aeui and not s.shared)
        for number in owned:
            del self._numbers[number]
        return owned

    async def callers(
        self, telephone_number: str, *, limit: int = 20, every_holder: bool = False
    ) -> list[Binding]:
        """Not kept here: the caller index answers without a store."""
        return []

    async def record(self, entry: HistoryRecord) -> int:
        """History is not kept without a store."""
        return 0

    async def history(
        self, aeui: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[HistoryEntry]:
        return []
