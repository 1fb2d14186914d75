"""Revoked device tokens: per device, the instant (whole seconds) before which its tokens are
refused, held in each replica's memory and reloaded from the store (docs/architecture.md,
"The state store"; README.md, "Revoking a device's tokens")."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from gateway.concurrency import REFRESH_SECONDS, every

log = logging.getLogger("gateway.auth")


class RevocationStore(Protocol):
    """Where revocations are kept, shared by every replica."""

    async def load(self) -> dict[str, datetime]:
        """Every device's revocation instant."""
        ...

    async def get(self, aeui: str) -> datetime | None: ...

    async def revoke(self, aeui: str, before: datetime) -> datetime:
        """Refuse ``aeui``'s tokens issued before ``before``, unless a later instant is
        stored already; answers the instant stored."""
        ...


class MemoryRevocationStore:
    """The revocations of a gateway without a database: this process only, forgotten on
    restart (as ``MemoryLedger`` forgets the devices' order)."""

    def __init__(self) -> None:
        self._before: dict[str, datetime] = {}

    async def load(self) -> dict[str, datetime]:
        return dict(self._before)

    async def get(self, aeui: str) -> datetime | None:
        return self._before.get(aeui)

    async def revoke(self, aeui: str, before: datetime) -> datetime:
        kept = max(before, self._before.get(aeui, before))
        self._before[aeui] = kept
        return kept


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Revocations:
    """What this replica knows of the revocations, over the store that keeps them."""

    def __init__(
        self,
        store: RevocationStore | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store: RevocationStore = store or MemoryRevocationStore()
        self._clock = clock
        #: AEUI -> the revocation instant, in seconds since the epoch (as ``iat`` is).
        self._before: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._before)

    def refuses(self, aeui: str, issued_at: float | None) -> bool:
        """Whether a token for ``aeui`` issued at ``issued_at`` (``None``: it does not say)
        is revoked. A dict lookup: the cost every device-token request pays."""
        before = self._before.get(aeui)
        return before is not None and (issued_at is None or issued_at < before)

    def _learn(self, aeui: str, before: datetime) -> None:
        stamp = before.timestamp()
        if stamp > self._before.get(aeui, -math.inf):
            self._before[aeui] = stamp

    async def revoke(self, aeui: str) -> datetime:
        """Refuse ``aeui``'s tokens issued before now (this second), at once on this replica;
        answers the instant in force (a later one already stored stays)."""
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        stored = await self.store.revoke(aeui, now)
        self._learn(aeui, stored)
        return stored

    async def get(self, aeui: str) -> datetime | None:
        """The instant in force for ``aeui``, as the store says (``None``: never revoked)."""
        found = await self.store.get(aeui)
        if found is not None:
            self._learn(aeui, found)
        return found

    async def refresh(self) -> None:
        """Reload every revocation from the store, keeping the later of each instant."""
        loaded = await self.store.load()
        merged = {aeui: before.timestamp() for aeui, before in loaded.items()}
        for aeui, before in self._before.items():
            if before > merged.get(aeui, -math.inf):
                merged[aeui] = before
        self._before = merged  # one assignment: a request sees the old map or the new

    async def refresh_forever(self, interval: float = REFRESH_SECONDS) -> None:
        """Reload every ``interval`` seconds; while the store is down, what is known is
        still refused."""
        await every(interval, self.refresh, log, "the token revocations could not be reloaded")
