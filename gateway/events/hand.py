"""A delivery lane's hand: the deliveries it claimed and has not recorded yet.

At most ``bound`` of one target's are in flight; the others wait in hand, and each attempt
that ends starts the next of its target. The attempts report their own ends (no callback, no
wait on every task): the lane waits on one future (``until``), which an end resolves, or the
lane's wake (``LaneWake``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.store.deliveries import Claimed, Outcome


class LaneWake(asyncio.Event):
    """A lane's wake: also resolves the future its lane waits on (``waiter``), if any."""

    waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        super().set()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Hand:
    """A lane's claimed deliveries not yet recorded: in flight (by id, with when they
    started), waiting for a slot of their target, or ended (with their outcome); how many
    each target has; the targets the last claim left."""

    def __init__(
        self,
        attempt: Callable[[Claimed], Awaitable[Outcome]],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        bound: int,
    ) -> None:
        self._attempt, self._spawn = attempt, spawn
        self.bound = bound
        self.running: dict[int, tuple[Claimed, float]] = {}
        self.waiting: dict[str, deque[Claimed]] = {}
        self.held: Counter[str] = Counter()
        self.flying: Counter[str] = Counter()
        self.ended: list[tuple[Claimed, Outcome]] = []
        self.excluded: list[str] = []
        self._signal: asyncio.Future[None] | None = None
        self._all = False

    def __len__(self) -> int:
        return len(self.running) + sum(map(len, self.waiting.values()))

    def add(self, item: Claimed) -> None:
        target = item.delivery.target
        self.held[target] += 1
        if self.flying[target] < self.bound:
            self._begin(item)
        else:
            self.waiting.setdefault(target, deque()).append(item)

    def _begin(self, item: Claimed) -> None:
        self.flying[item.delivery.target] += 1
        self.running[item.delivery.id] = (item, time.monotonic())
        self._spawn(self._run(item))

    async def _run(self, item: Claimed) -> None:
        outcome = await self._attempt(item)
        target = item.delivery.target
        self.flying[target] -= 1
        queue = self.waiting.get(target)
        if queue:
            after = queue.popleft()
            if not queue:
                del self.waiting[target]
            with contextlib.suppress(RuntimeError):  # the lane is stopping: leases released
                self._begin(after)
        self.ended.append((item, outcome))
        signal = self._signal
        if signal is not None and not signal.done() and (not self._all or self._all_ended()):
            signal.set_result(None)

    def _all_ended(self) -> bool:
        return len(self.ended) == len(self.running) and not self.waiting

    async def until(self, within: float, wake: LaneWake | None = None) -> None:
        """Until an attempt has ended or ``wake`` is set, at most ``within`` seconds."""
        if self.ended or (wake is not None and wake.is_set()):
            return
        await self._until(within, wake)

    async def until_all(self, within: float) -> None:
        """Until every attempt in hand has ended, at most ``within`` seconds."""
        if not self._all_ended():
            self._all = True
            await self._until(within, None)

    async def _until(self, within: float, wake: LaneWake | None) -> None:
        signal = self._signal = asyncio.get_running_loop().create_future()
        if wake is not None:
            wake.waiter = signal
        try:
            await asyncio.wait((signal,), timeout=within)
        finally:
            self._signal, self._all = None, False
            if wake is not None:
                wake.waiter = None

    def take_ended(self) -> list[tuple[Claimed, Outcome]]:
        """The attempts that ended, no longer in hand."""
        ended, self.ended = self.ended, []
        for item, _ in ended:
            self._drop(self.running.pop(item.delivery.id)[0])
        return ended

    def _drop(self, item: Claimed) -> Claimed:
        target = item.delivery.target
        self.held[target] -= 1
        if not self.held[target]:
            del self.held[target]
            del self.flying[target]
        return item

    def full(self) -> list[str]:
        """The targets with ``bound`` deliveries in hand or more."""
        return [target for target, n in self.held.items() if n >= self.bound]

    def give_back(self, started_before: float) -> list[int]:
        """Drop the deliveries waiting behind targets whose every attempt in flight started
        before ``started_before`` (monotonic seconds); their ids."""
        hanging = set(self.waiting)
        ended = {item.delivery.id for item, _ in self.ended}
        for id, (item, since) in self.running.items():
            if since > started_before and id not in ended:
                hanging.discard(item.delivery.target)
        given = [item for target in hanging for item in self.waiting.pop(target)]
        return [self._drop(item).delivery.id for item in given]
