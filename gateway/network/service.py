"""The wiremap as one replica holds it: an in-memory index over the shared store.

Every write goes to the store first (one transaction that also bumps the wiremap's version)
and then to this replica's index; other replicas see the new version on their next poll
(``refresh_forever``, every ``GATEWAY_NETWORK_REFRESH_SECONDS``) and reload the whole map, off
the event loop, swapping the index in one assignment. A change made at one replica therefore
reaches every other within the refresh interval plus one load. Lookups never touch the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.bandwidth.models import Address
from gateway.concurrency import every
from gateway.dlr.address import Normalized
from gateway.dlr.errors import FieldError
from gateway.dlr.pipeline.records import in_address
from gateway.network.wiremap import (
    Conflict,
    Entry,
    Judge,
    Kind,
    Match,
    Observation,
    Stale,
    WiremapError,
    WiremapIndex,
    canonical_key,
    entry_id,
    parse_description,
    parse_location_id,
    parse_subnet,
    subnet_note,
)

log = logging.getLogger("gateway.network")

#: The most entries a wiremap may hold (the index lives in every replica's memory).
MAX_ENTRIES = 1_000_000


class WiremapStore(Protocol):
    """Where the wiremap is kept, shared by every replica."""

    async def version(self) -> int: ...
    async def load(self) -> tuple[int, list[Entry]]: ...
    async def put(self, entries: Sequence[Entry], *, expect: int | None = None) -> int:
        """Write ``entries``, and bump the version; ``Stale`` (nothing written) when the
        version is not ``expect``."""
        ...

    async def delete(self, entry_id: str) -> tuple[int, Entry | None]: ...


class MemoryWiremapStore:
    """The wiremap of a gateway without a database: this process only."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._version = 0

    async def version(self) -> int:
        return self._version

    async def load(self) -> tuple[int, list[Entry]]:
        return self._version, list(self._entries.values())

    async def put(self, entries: Sequence[Entry], *, expect: int | None = None) -> int:
        if expect is not None and expect != self._version:
            raise Stale
        for entry in entries:
            self._entries[entry.id] = entry
        self._version += 1
        return self._version

    async def delete(self, entry_id: str) -> tuple[int, Entry | None]:
        gone = self._entries.pop(entry_id, None)
        if gone is not None:
            self._version += 1
        return self._version, gone


Normalizer = Callable[[Address | Mapping[str, object] | str], Normalized]


@dataclass(frozen=True, slots=True)
class Applied:
    """What a batch of entries did (or, in a dry run, would do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0


class NotFound(LookupError):
    pass


#: Writes tried against the newest map before ``Stale`` is given up on.
_ATTEMPTS = 5


class Wiremap:
    def __init__(
        self,
        store: WiremapStore,
        normalize: Normalizer,
        *,
        on_resolve: Callable[[str | None], None] | None = None,
        on_size: Callable[[Mapping[Kind, int]], None] | None = None,
    ) -> None:
        self.store = store
        self.normalize = normalize
        self.index = WiremapIndex()
        self.version = -1
        self._on_resolve = on_resolve
        self._on_size = on_size
        self._writes = asyncio.Lock()
        #: ``entries``' last answer, and the index, its changes and the kind it was for.
        self._sorted: tuple[WiremapIndex | None, int, Kind | None, tuple[Entry, ...]] = (
            None,
            0,
            None,
            (),
        )

    # -- reading -------------------------------------------------------------------------

    def resolve(self, observation: Observation, judge: Judge | None = None) -> Match | None:
        """The entry ``observation`` resolves to (port > switch > access point > subnet),
        as ``judge`` finds it (whether it stands), and counted so."""
        match = self.index.resolve(observation)
        if match is not None and judge is not None:
            match = judge(observation, match)
        if self._on_resolve is not None:
            self._on_resolve(None if match is None else match.counted_as)
        return match

    def get(self, entry_id: str) -> Entry | None:
        return self.index.get(entry_id)

    def entries(self, kind: Kind | None = None) -> tuple[Entry, ...]:
        """The entries (of one kind), in a stable order: by kind, then key. Sorted once per
        change of the map (and kind asked for), not for every page of a list: a sort of a
        large wiremap holds up the event loop, reports and all."""
        index, changes, of, held = self._sorted
        if index is not self.index or changes != self.index.changes or of is not kind:
            chosen = [e for e in self.index if kind is None or e.kind is kind]
            chosen.sort(key=lambda e: (e.kind.value, e.key, e.port_id or ""))
            held = tuple(chosen)
            self._sorted = (self.index, self.index.changes, kind, held)
        return held

    # -- keeping up with the store -------------------------------------------------------

    async def refresh(self) -> bool:
        """Reload the map when the store's version moved; whether it did."""
        async with self._writes:
            return await self._refresh()

    async def _refresh(self) -> bool:
        """``refresh``, under ``_writes``: no write of this replica's lands in between."""
        if await self.store.version() == self.version:
            return False
        version, entries = await self.store.load()
        if version == self.version:
            return False
        self.index = await asyncio.to_thread(WiremapIndex, entries)
        self.version = version
        if self.index.unserved:
            log.warning(
                "%d wiremap entries are not served: stored before today's checks (a subnet "
                "too wide, invisible characters); their warnings in /v1/network say why",
                len(self.index.unserved),
            )
        self._sized()
        return True

    async def refresh_forever(self, interval: float) -> None:
        """Reload every ``interval`` seconds; while the store is down, the map held is
        still served."""
        await every(interval, self.refresh, log, "the wiremap could not be refreshed")

    def _sized(self) -> None:
        if self._on_size is not None:
            self._on_size(self.index.counts())

    # -- building entries ----------------------------------------------------------------

    def build(
        self,
        kind: Kind,
        key: object,
        *,
        port_id: object = None,
        address: Address | Mapping[str, object] | None,
        location_id: object = None,
        description: object = None,
    ) -> tuple[Entry, tuple[FieldError, ...]]:
        """An entry from untrusted values: its key canonical, its address validated like a
        report's (``addressLine2`` the place inside); ``WiremapError`` naming every field."""
        errors: list[FieldError] = []
        canonical: tuple[str, str | None] = ("", None)
        try:
            canonical = canonical_key(kind, key, port_id)
        except WiremapError as exc:
            errors.extend(exc.errors)
        warnings: tuple[FieldError, ...] = ()
        normalized_address: Address | None = None
        if address is None:
            errors.append(FieldError("address", "is required (the location's civic address)"))
        else:
            normalized = self.normalize(address)
            if not normalized.valid or normalized.address is None:
                found = normalized.errors or (FieldError("address", "cannot be parsed"),)
                errors.extend(map(in_address, found))
            else:
                normalized_address = normalized.address
                warnings = normalized.warnings
        loc = text = None
        try:
            loc = parse_location_id(location_id)
        except WiremapError as exc:
            errors.extend(exc.errors)
        try:
            text = parse_description(description)
        except WiremapError as exc:
            errors.extend(exc.errors)
        if errors or normalized_address is None:
            raise WiremapError(tuple(errors))
        entry = Entry(kind, canonical[0], normalized_address, canonical[1], loc, text)
        if kind is Kind.SUBNET and isinstance(key, str):
            note = subnet_note(key, parse_subnet(canonical[0]))
            warnings = (*warnings, note) if note is not None else warnings
        return entry, warnings

    # -- writing -------------------------------------------------------------------------

    async def create(self, entry: Entry) -> tuple[FieldError, ...]:
        """Add a new entry; ``Conflict`` when its key is taken or it overlaps another."""

        def plan() -> list[Entry]:
            held = self.index.get(entry.id)
            if held is not None:
                raise Conflict(f"the {entry.kind.value} {_named(entry)} is already mapped", held)
            self.index.check(entry)
            self._room(1)
            return [entry]

        async with self._writes:
            await self._commit(plan)
            return self.index.warnings(entry)

    async def update(self, entry_id: str, entry: Entry) -> tuple[FieldError, ...]:
        """Replace the location of entry ``entry_id``; its key is its identity."""

        def plan() -> list[Entry]:
            if self.index.get(entry_id) is None:
                raise NotFound(entry_id)
            if entry.id != entry_id:
                message = (
                    "an entry's network identity cannot change: delete the entry and create another"
                )
                raise WiremapError((FieldError(_key_field(entry.kind), message),))
            return [entry]

        async with self._writes:
            await self._commit(plan)
            return self.index.warnings(entry)

    async def delete(self, entry_id: str) -> Entry:
        async with self._writes:
            version, gone = await self.store.delete(entry_id)
            if gone is None:
                raise NotFound(entry_id)
            self.index.remove(entry_id)
            self._advanced(version)
            self._sized()
            return gone

    async def apply(self, entries: Sequence[Entry], *, dry_run: bool = False) -> Applied:
        """Create or update ``entries`` (an import), checked together first: nothing is
        written when one conflicts (``Conflict``); entries already held as given are left
        alone, so applying the same batch twice changes nothing."""
        applied = Applied()

        def plan() -> list[Entry]:
            nonlocal applied
            created = updated = 0
            changed: list[Entry] = []
            trial = WiremapIndex()  # the batch's own entries, to find overlaps within it
            for entry in entries:
                held = self.index.get(entry.id)
                if held == entry:
                    continue
                if held is None:
                    self.index.check(entry)
                    trial.check(entry)
                    trial.put(entry)
                    created += 1
                else:
                    updated += 1
                changed.append(entry)
            self._room(created)
            applied = Applied(created, updated, len(entries) - len(changed))
            return [] if dry_run else changed

        async with self._writes:
            await self._commit(plan)
            return applied

    async def _commit(self, plan: Callable[[], list[Entry]]) -> None:
        """Write what ``plan`` decides (its checks made on the newest map) at the store's
        next version; when another replica wrote in between (``Stale``), reload the map and
        decide again, so that no check is made on a map another replica has changed (two
        replicas creating overlapping wildcards at once: the second is refused)."""
        for _ in range(_ATTEMPTS):
            await self._refresh()
            entries = plan()
            if not entries:
                return
            try:
                version = await self.store.put(entries, expect=self.version)
            except Stale:
                continue
            self._wrote(version, entries)
            return
        raise Stale

    def _room(self, more: int) -> None:
        if len(self.index) + more > MAX_ENTRIES:
            raise WiremapError(
                (FieldError("wiremap", f"would hold more than {MAX_ENTRIES:,} entries"),)
            )

    def _wrote(self, version: int, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self.index.put(entry)
        self._advanced(version)
        self._sized()

    def _advanced(self, version: int) -> None:
        """The index holds the map at ``version`` only when the write was the very next
        change; when another replica wrote in between, the version stays behind, so that
        the next refresh reloads the whole map (its change included)."""
        if version == self.version + 1:
            self.version = version


def _key_field(kind: Kind) -> str:
    return {
        Kind.SUBNET: "subnet",
        Kind.ACCESS_POINT: "bssid",
        Kind.SWITCH: "chassisId",
        Kind.PORT: "portId",
    }[kind]


def _named(entry: Entry) -> str:
    if entry.kind is Kind.PORT:
        return f"{entry.port_id} of chassis {entry.key}"
    return entry.key


__all__ = ["Applied", "MemoryWiremapStore", "NotFound", "Wiremap", "WiremapStore", "entry_id"]
