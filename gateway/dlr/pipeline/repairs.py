"""Repair of uncertain writes: a write whose outcome is unknown is checked, and redone if
the carrier does not hold the device's desired binding."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass

from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
)
from gateway.bandwidth.models import Endpoint
from gateway.bandwidth.upstreams import in_background
from gateway.concurrency import KeyedLocks
from gateway.dlr.binding import Binding, observed
from gateway.dlr.ledger import Ledger
from gateway.dlr.pipeline.knowledge import Knowledge
from gateway.dlr.pipeline.ports import Carrier
from gateway.dlr.pipeline.records import Unroutable, endpoint_json, taken
from gateway.dlr.pipeline.writes import CarrierWrites
from gateway.events.model import EventSink, provisioning_failed
from gateway.store.base import HistoryKind, HistoryRecord
from gateway.store.errors import StoreUnavailable

log = logging.getLogger("gateway.pipeline")


def refused(exc: Exception) -> bool:
    """Whether the carrier definitively refused a write (the same write would be again).
    Not a refusal of the gateway's credentials: the operator's trouble, not the device's."""
    return (
        isinstance(exc, UpstreamRejected)
        and not exc.ambiguous
        and not isinstance(exc, UpstreamAuthError)
    )


def _binds(desired: Binding, endpoint: Endpoint | None) -> bool:
    """Whether ``endpoint`` binds the device as ``desired`` does."""
    return endpoint is not None and desired.same_as(
        endpoint.location_id or "", endpoint.caller_name or "", endpoint.telephone_number or ""
    )


class Background:
    """The pipeline's background tasks: started here, awaited or cancelled together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run ``coro`` as background work: its carrier calls take the background share of
        the connection slots (``in_background``), not those a report needs."""
        context = contextvars.copy_context()
        context.run(in_background)
        task = asyncio.get_running_loop().create_task(coro, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until every task has ended, those they started included."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass(slots=True)
class Repairs:
    """Watches abandoned writes and repairs what they may have undone."""

    carrier: Carrier
    ledger: Ledger
    known: Knowledge
    writes: CarrierWrites
    locks: KeyedLocks[str]
    background: Background
    on_repair: Callable[[str], None] | None
    retry_delays: tuple[float, ...]
    #: Where ``provisioning_failed`` goes when the carrier refuses a write in the background.
    events: EventSink | None = None

    def maybe_applied(self, alternate_end_user_id: str) -> None:
        """A write failed, but the carrier may hold it (or hold it later).

        The claimed binding stays the device's desired one and newest report (so an older
        report cannot overwrite it), and a repair check is scheduled: by the time the error
        reached us the carrier has answered or the connection is gone, unless the client is
        still watching an abandoned exchange, whose settling schedules its own check.
        """
        self.background.spawn(self._repair_later(alternate_end_user_id, 0.0))

    def abandoned(self, operation: str, record: object, settled: Awaitable[None]) -> None:
        """The carrier client's ``on_abandoned`` hook: watch an endpoint write to its end.

        Until it settles the device's cached binding is not trusted (every report writes);
        once the carrier has answered it (or the connection is gone), the device's record
        is re-read and repaired if that late write undid a newer one.
        """
        if not isinstance(record, Endpoint) or not record.alternate_end_user_id:
            return
        aeui = record.alternate_end_user_id
        self.known.unsettled[aeui] = self.known.unsettled.get(aeui, 0) + 1
        self.known.distrust(aeui)
        self.background.spawn(self._after_settled(aeui, settled))

    async def _after_settled(self, aeui: str, settled: Awaitable[None]) -> None:
        try:
            await settled
        finally:
            left = self.known.unsettled.get(aeui, 1) - 1
            if left > 0:
                self.known.unsettled[aeui] = left
            else:
                self.known.unsettled.pop(aeui, None)
        await self._repair_later(aeui, 0.0)

    async def _repair_later(self, aeui: str, delay: float) -> None:
        """Repair, retried after each of ``retry_delays``; while the carrier refuses the
        gateway's credentials, after the longest of them for as long as that lasts (the
        repair stays pending: nothing is wrong with the device's binding)."""
        await asyncio.sleep(delay)
        delays = iter((*self.retry_delays, None))
        tries = 0
        waiting = False  # for the carrier to accept the gateway's credentials again
        while True:
            tries += 1
            try:
                await self.repair(aeui)
                return
            except (UpstreamError, StoreUnavailable) as exc:
                if refused(exc):
                    return  # recorded: the same write would be refused again
                if isinstance(exc, UpstreamAuthError):
                    if not waiting:  # the client logs the outage itself, once
                        log.info("repair of %s waits for the carrier to accept the gateway", aeui)
                        waiting = True
                    self.known.distrust(aeui)  # a report meanwhile writes
                    await asyncio.sleep(max(self.retry_delays, default=30.0))
                    continue
                wait = next(delays)
                if wait is None:
                    log.warning("repair of %s gave up after %d tries: %s", aeui, tries, exc)
                    self.known.distrust(aeui)  # the next report writes again
                    return
                await asyncio.sleep(wait)

    async def repair(self, alternate_end_user_id: str) -> bool:
        """Make the carrier hold the device's desired binding; ``True`` when it had to write."""
        aeui = alternate_end_user_id
        async with self.locks.hold(aeui):
            stored, deleted_at = await self.ledger.get_or_deleted(aeui)
            if stored is None:
                return deleted_at is not None and await self._deleted_again(aeui)
            desired = stored
            try:
                held: Endpoint | None = await self.carrier.get_endpoint(desired.endpoint_id)
            except UpstreamNotFound:
                held = None
            holds = _binds(desired, held)
            refusal = self.carrier.refusal(desired.endpoint_id)
            if not holds and refusal is not None and _binds(desired, refusal[0]):
                # The write answered pending (202) was refused since: so would its re-write be.
                self.known.distrust(aeui)
                await self._refused(stored, held, refusal[1])
                raise refusal[1]
            if holds:
                # An unconfirmed binding the carrier holds: a write whose answer was lost
                # (a timeout, a replica that died) landed after all. Recorded now.
                late = None
                if not stored.confirmed:
                    late = taken(HistoryKind.APPLIED, None, stored, "gateway")
                confirmed = await self.ledger.confirm(aeui, stored.version, record=late)
                if confirmed:
                    self.known.learn(dataclasses.replace(stored, confirmed=True))
                if confirmed and aeui not in self.known.unsettled:
                    self.known.bindings[aeui] = desired
                return False
            endpoint = desired.endpoint()
            self.known.distrust(aeui)
            try:
                try:
                    await self.writes.endpoint(endpoint, desired.address)
                except Unroutable as unroutable:
                    # Its location was lost and the carrier refuses the address now: a
                    # refusal like any other, not an error that ends the caller's loop.
                    cause = unroutable.__cause__
                    if isinstance(cause, UpstreamRejected):
                        raise cause from None
                    raise UpstreamRejected(unroutable.message, operation="createLocation") from None
            except UpstreamError as exc:
                if refused(exc):
                    await self._refused(stored, held, exc)
                raise
            log.warning(
                "repaired %s: the carrier held location %s, not %s",
                aeui,
                held.location_id if held is not None else None,
                desired.location_id,
            )
            if self.on_repair is not None:
                self.on_repair("regressed" if held is not None else "missing")
            record = HistoryRecord(
                aeui,
                HistoryKind.REPAIRED,
                "gateway",
                stored.source,
                None if held is None else endpoint_json(held),
                stored.as_json(),
                stored.observed_at,
            )
            if await self.ledger.confirm(aeui, stored.version, record=record):
                self.known.learn(dataclasses.replace(stored, confirmed=True))
                if aeui not in self.known.unsettled:
                    self.known.bindings[aeui] = desired
            else:
                # A newer binding was claimed while this repair wrote (perhaps at another
                # replica), and this write may have landed after it: check again.
                self.maybe_applied(aeui)
            return True

    async def _deleted_again(self, aeui: str) -> bool:
        """A deleted device (a tombstone, no row) whose endpoint a report's write that raced
        the deletion created again: deleted again at the carrier and recorded (``deleted``,
        by the gateway); ``True`` then. The store is read again afterwards: a row claimed
        meanwhile is repaired as any other (docs/architecture.md, "A report's path")."""
        endpoint_id = self.known.endpoint_id(aeui)
        try:
            held = await self.carrier.get_endpoint(endpoint_id)
        except UpstreamNotFound:
            return False
        if held.alternate_end_user_id not in (None, aeui):
            return False  # another device's endpoint (the carrier says whose it is)
        self.known.distrust(aeui)
        try:
            await self.carrier.delete_endpoint(endpoint_id)
        except UpstreamNotFound:
            pass  # deleted meanwhile (another replica's repair, an admin)
        else:
            log.warning(
                "deleted %s again: a write had re-created its endpoint %s", aeui, endpoint_id
            )
            await self.ledger.record(
                HistoryRecord(
                    aeui,
                    HistoryKind.DELETED,
                    "gateway",
                    "gateway",
                    endpoint_json(held),
                    None,
                    None,
                )
            )
        if await self.ledger.get(aeui) is not None:
            # Claimed again meanwhile (a newer report): its binding is written back.
            self.maybe_applied(aeui)
        return True

    async def _refused(self, stored: Binding, held: Endpoint | None, exc: UpstreamError) -> None:
        """The carrier refused the device's desired binding after the gateway had answered
        (a 202 whose order failed, or a repair): it stays unconfirmed (the console's
        failures, the device's next report writes it again), and the refusal is recorded in
        the device's history and sent as ``provisioning_failed``, once per claim."""
        log.warning("repair of %s refused by the carrier: %s", stored.aeui, exc.message)
        latest = await self.ledger.history(stored.aeui, limit=1)
        if (
            latest
            and latest[0].kind == HistoryKind.PROVISIONING_FAILED
            and (latest[0].after or {}).get("version") == stored.version
        ):
            return
        after = {
            **stored.as_json(),
            "version": stored.version,
            "carrierError": {
                "operation": exc.operation,
                "status": exc.status,
                "message": exc.message[:300],
            },
        }
        before = None if held is None else endpoint_json(held)
        record = HistoryRecord(
            stored.aeui,
            HistoryKind.PROVISIONING_FAILED,
            "gateway",
            stored.source,
            before,
            after,
            stored.observed_at,
        )
        await self.ledger.record(record)
        if self.events is not None:
            self.events.emit(
                provisioning_failed(
                    stored.aeui,
                    stored.telephone_number,
                    stored.location_id,
                    exc,
                    outcome_unknown=False,
                    observed_at=observed(stored),
                )
            )
