"""Where the pipeline keeps each device's desired binding and newest report time.

``Ledger`` is the part of ``gateway.store.StateStore`` the pipeline needs; the state store
(PostgreSQL or SQLite) is the durable, shared one. ``MemoryLedger`` keeps the same
semantics in bounded process memory, for a gateway run without a database (tests and
benchmarks): order is then kept per process and forgotten on restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cachetools import LRUCache

from gateway.store.base import Claim, HistoryKind, StoredBinding


class Ledger(Protocol):
    async def get(self, aeui: str) -> StoredBinding | None: ...

    async def claim(
        self, binding: StoredBinding, *, credential: str, kind: str = HistoryKind.APPLIED
    ) -> Claim: ...

    async def confirm(self, aeui: str, version: int) -> bool: ...

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool: ...

    async def delete(self, aeui: str) -> StoredBinding | None: ...

    async def locations_known(self, location_id: str) -> bool: ...

    async def remember_location(
        self,
        location_id: str,
        address: Mapping[str, Any],
        status: str | None,
        latitude: float | None,
        longitude: float | None,
    ) -> None: ...


class MemoryLedger:
    """``Ledger`` in bounded memory; same answers as the state store, one process only."""

    def __init__(self, maxsize: int = 200_000) -> None:
        self._rows: LRUCache[str, StoredBinding] = LRUCache(maxsize)
        self._locations: LRUCache[str, bool] = LRUCache(maxsize)

    async def get(self, aeui: str) -> StoredBinding | None:
        return self._rows.get(aeui)

    async def claim(
        self, binding: StoredBinding, *, credential: str, kind: str = HistoryKind.APPLIED
    ) -> Claim:
        previous = self._rows.get(binding.aeui)
        if previous is not None and binding.observed_at < previous.observed_at:
            return Claim(False, previous, previous)
        version = (previous.version if previous is not None else 0) + 1
        current = dataclasses.replace(binding, confirmed=False, version=version)
        self._rows[binding.aeui] = current
        return Claim(True, previous, current)

    async def confirm(self, aeui: str, version: int) -> bool:
        row = self._rows.get(aeui)
        if row is None or row.version != version:
            return False
        self._rows[aeui] = dataclasses.replace(row, confirmed=True)
        return True

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        row = self._rows.get(aeui)
        if row is None or (version is not None and row.version != version):
            return False
        if observed_at < row.observed_at:
            return False
        if observed_at > row.observed_at:
            self._rows[aeui] = dataclasses.replace(row, observed_at=observed_at)
        return True

    async def delete(self, aeui: str) -> StoredBinding | None:
        return self._rows.pop(aeui, None)

    async def locations_known(self, location_id: str) -> bool:
        return location_id in self._locations

    async def remember_location(
        self,
        location_id: str,
        address: Mapping[str, Any],
        status: str | None,
        latitude: float | None,
        longitude: float | None,
    ) -> None:
        self._locations[location_id] = True
