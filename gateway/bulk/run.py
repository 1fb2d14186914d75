"""An import from its file to the carrier: read, check, plan, then apply with progress.

``prepare`` reads and checks the whole file and plans it (``--dry-run`` stops there).
``Importer.apply`` runs the rows through the report pipeline, as devices' reports are (the
same minimal carrier calls, per-device ordering, history and metrics), a bounded number at
a time; a carrier that asks to slow down (429, ``Retry-After``) pauses every worker until
then, and one that refuses the gateway's credentials stops the run (``Summary.error``).
Each finished line is recorded under the import's ID (``gateway.store.imports``), so
a run stopped any way at all is resumed by ID and applies every line once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from gateway.bandwidth.models import Address
from gateway.bandwidth.upstreams import in_background
from gateway.bulk.formats import Limits, read
from gateway.bulk.validate import Checked, DeviceRow, LocationRow, Lookups, Row, check
from gateway.dlr.pipeline import (
    Pipeline,
    Report,
    Superseded,
    Unroutable,
    address_from_json,
)
from gateway.rows import RowProblem
from gateway.store.base import NumberOwned
from gateway.store.errors import StoreUnavailable
from gateway.store.imports import ImportRecord, ImportStore, LineDone, now_us
from gateway.store.mapping import from_us

log = logging.getLogger("gateway.bulk")

#: Outcomes of a line: what the plan calls it, and what applying it did.
CREATED, MOVED, UPDATED, UNCHANGED = "created", "moved", "updated", "unchanged"
FAILED, SUPERSEDED = "failed", "superseded"
#: Attempts at one line while the carrier is unavailable or rate-limiting, before the line
#: is left for a resume.
MAX_ATTEMPTS = 8
#: An import's ID: hexadecimal digits.
ID_LENGTH = 16
#: Seconds between a run's signs of life (its row's ``updated_at``) while no line finishes.
HEARTBEAT_EVERY = 5.0
#: Seconds without a sign of life after which a ``running`` import is taken as stopped (the
#: process that ran it was killed): it reads ``incomplete``, to be resumed.
STALE_AFTER = 60.0
#: Why a run stopped when another claimed its import.
TAKEN_OVER = (
    "another run resumed the import while this one gave no sign of life (for "
    f"{STALE_AFTER:.0f} s); that run applies the lines left"
)


def state_of(found: ImportRecord) -> tuple[str, str | None]:
    """The import's state and why it stopped: a ``running`` import whose run has given no
    sign of life for ``STALE_AFTER`` (its process was killed) is ``incomplete``."""
    report = found.report or {}
    quiet = now_us() - found.updated_at
    if found.state == "running" and quiet > STALE_AFTER * 1_000_000:
        why = (
            f"its run stopped without finishing (no sign of life for {STALE_AFTER:.0f} s: "
            "its process ended); resume it"
        )
        return "incomplete", why
    return found.state, report.get("error")


class ResumeRefused(ValueError):
    """``--resume ID`` names no import, or one of another kind or file."""


class ImportRunning(ResumeRefused):
    """``--resume ID`` names an import a run (another process's) still applies."""

    def __init__(self, import_id: str, alive_at: int) -> None:
        quiet = max(0.0, (now_us() - alive_at) / 1_000_000)
        #: Seconds until it may be resumed, should that run have stopped without a word.
        self.wait = max(0.0, STALE_AFTER - quiet)
        super().__init__(
            f"import {import_id} is running (a sign of life {quiet:.0f} s ago, in this or "
            f"another process): wait for it to end; if its process was killed, it may be "
            f"resumed {self.wait:.0f} s from now ({STALE_AFTER:.0f} s without a sign of life)"
        )


@dataclass(frozen=True, slots=True)
class Plan:
    actions: dict[int, str]
    new_locations: int
    #: The carrier calls applying it costs (at most; a line some other writer applies first
    #: costs fewer): a new location one, a new device one (created without the update tried
    #: first: the gateway has never seen it), a changed device one.
    carrier_calls: int

    def counts(self) -> dict[str, int]:
        found = Counter(self.actions.values())
        return {k: found.get(k, 0) for k in (CREATED, MOVED, UPDATED, UNCHANGED)}

    def as_json(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "newLocations": self.new_locations,
            "carrierCalls": self.carrier_calls,
        }


@dataclass(frozen=True, slots=True)
class Prepared:
    checked: Checked
    digest: str
    plan: Plan

    @property
    def problems(self) -> Sequence[RowProblem]:
        return self.checked.problems


class Progress(Protocol):
    def update(self, done: int, failed: int, total: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, done: int, failed: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Summary:
    import_id: str
    total: int
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: Lines left for a resume (the carrier stayed unavailable, or the run stopped).
    left: int = 0
    #: Why the run stopped before its end (the carrier refused the gateway's credentials).
    error: str | None = None

    @property
    def state(self) -> str:
        return "done" if self.left == 0 else "incomplete"

    def as_json(self) -> dict[str, Any]:
        return {
            "importId": self.import_id,
            "state": self.state,
            "total": self.total,
            "outcomes": dict(sorted(self.outcomes.items())),
            "left": self.left,
            "failures": self.failures[:1000],
            **({"error": self.error} if self.error is not None else {}),
        }


def lookups(imports: ImportStore) -> Lookups:
    async def locations(ids: Sequence[str]) -> dict[str, Address]:
        found = {}
        for row in await imports.locations(ids):
            address = address_from_json(_loads(row["address"]))
            if address is not None:
                found[row["location_id"]] = address
        return found

    return Lookups(numbers=imports.numbers, locations=locations)


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


async def prepare(
    kind: str, data: bytes, pipeline: Pipeline, imports: ImportStore, limits: Limits
) -> Prepared:
    """The file read (``BadFile``), every row checked, and the plan of the valid rows."""
    parsed = read(kind, data, limits)
    checked = await check(parsed, pipeline.normalize, lookups(imports))
    plan = await _plan(checked.rows, imports)
    return Prepared(checked, hashlib.sha256(data).hexdigest(), plan)


async def _plan(rows: Sequence[Row], imports: ImportStore) -> Plan:
    known = await imports.known_locations([r.location_id for r in rows])
    held = await imports.bindings([r.aeui for r in rows if isinstance(r, DeviceRow)])
    actions: dict[int, str] = {}
    new_locations = {r.location_id for r in rows} - known
    calls = len(new_locations)
    for row in rows:
        if isinstance(row, LocationRow):
            actions[row.line] = CREATED if row.location_id in new_locations else UNCHANGED
            continue
        stored = held.get(row.aeui)
        if stored is None:
            actions[row.line] = CREATED
            calls += 1
        elif stored[0] != row.location_id:
            actions[row.line] = MOVED
            calls += 1
        elif stored[3] and stored[1:3] == (row.caller_name, row.telephone_number):
            actions[row.line] = UNCHANGED
        else:
            actions[row.line] = UPDATED
            calls += 1
    return Plan(actions, len(new_locations), calls)


class Importer:
    """Applies prepared imports through ``pipeline``, recording progress in ``imports``."""

    def __init__(
        self,
        pipeline: Pipeline,
        imports: ImportStore,
        *,
        concurrency: int = 8,
        flush_every: float = 0.5,
        heartbeat_every: float = HEARTBEAT_EVERY,
        on_line: Callable[[str, str], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        #: Called with the kind and the outcome of every line applied (the metrics).
        self.on_line = on_line
        self.imports = imports
        self.concurrency = max(1, concurrency)
        self.flush_every = flush_every
        self.heartbeat_every = heartbeat_every
        #: Monotonic time before which no worker calls the carrier (its ``Retry-After``).
        self._pause_until = 0.0

    async def start(self, prepared: Prepared, resume: str | None = None) -> str:
        """A new import's ID, or ``resume`` once checked to be this kind and file."""
        kind = prepared.checked.kind
        if resume is None:
            import_id = secrets.token_hex(ID_LENGTH // 2)
            await self.imports.create(import_id, kind, prepared.digest, len(prepared.checked.rows))
            return import_id
        found = None
        if len(resume) == ID_LENGTH and resume.isalnum():
            found = await self.imports.get(resume)
        if found is None:
            raise ResumeRefused(f"there is no import {resume!r}")
        if found.kind != kind:
            raise ResumeRefused(f"import {resume} imported {found.kind}, not {kind}")
        if found.digest != prepared.digest:
            raise ResumeRefused(f"import {resume} was given another file (its SHA-256 differs)")
        alive_at = await self.imports.resume(resume, int(STALE_AFTER * 1_000_000))
        if alive_at is not None:
            raise ImportRunning(resume, alive_at)
        return resume

    async def apply(
        self, import_id: str, prepared: Prepared, progress: Progress | None = None
    ) -> Summary:
        """Every valid line not yet done, applied; the import's summary, also stored."""
        progress = progress or NoProgress()
        done = await self.imports.done(import_id)
        summary = Summary(import_id, len(prepared.checked.rows))
        for line in done.values():
            summary.outcomes[line.outcome] += 1
            if line.outcome == FAILED:
                summary.failures.append({"line": line.line, "reason": line.detail})
        pending = [r for r in prepared.checked.rows if r.line not in done]
        # The file says where devices were when the import began, not when (or on which resume)
        # each line happens to run: a device's own report since then is newer, and stays.
        record = await self.imports.get(import_id)
        as_of = from_us(record.created_at) if record is not None else datetime.now(UTC)
        finished: list[LineDone] = []
        counter = {"done": len(done), "failed": summary.outcomes[FAILED]}
        total = len(prepared.checked.rows)
        progress.update(counter["done"], counter["failed"], total)
        rows = iter(pending)

        async def worker() -> None:
            in_background()  # this task's carrier calls leave slots for devices' reports
            for row in rows:
                if summary.error is not None:
                    return
                try:
                    planned = prepared.plan.actions.get(row.line, UPDATED)
                    outcome = await self._line(row, planned, as_of)
                except UpstreamAuthError as exc:
                    # The operator's trouble, not the line's: the run stops, every line not
                    # done is left for a resume (none marked failed).
                    if summary.error is None:
                        summary.error = f"the carrier refused the gateway's credentials: {exc}"
                        log.warning("import %s stopped: %s", import_id, summary.error)
                    return
                if outcome is None:
                    continue
                summary.outcomes[outcome.outcome] += 1
                if self.on_line is not None:
                    self.on_line(prepared.checked.kind, outcome.outcome)
                if outcome.outcome == FAILED:
                    counter["failed"] += 1
                    summary.failures.append({"line": row.line, "reason": outcome.detail})
                finished.append(outcome)
                counter["done"] += 1
                progress.update(counter["done"], counter["failed"], total)

        # The run's lease: the heartbeat it last wrote. Should another run claim the import
        # meanwhile (this one silent past STALE_AFTER: the store unreachable, the process
        # frozen), the next heartbeat finds it changed and this run stops.
        alive: dict[str, Any] = {"at": time.monotonic(), "lease": record and record.updated_at}

        async def flush() -> None:
            batch = finished[:]
            if batch:
                renewed = await self.imports.record(import_id, batch, alive["lease"])
            elif time.monotonic() - alive["at"] >= self.heartbeat_every:
                renewed = await self.imports.touch(import_id, alive["lease"])
            else:
                return
            del finished[: len(batch)]  # recorded, this run's or not: each line is done
            if renewed is None and alive["lease"] is not None:
                if summary.error is None:
                    summary.error = TAKEN_OVER
                    log.warning("import %s stopped: %s", import_id, TAKEN_OVER)
                return
            alive.update(at=time.monotonic(), lease=renewed)

        async def flusher() -> None:
            while True:
                await asyncio.sleep(self.flush_every)
                try:
                    await flush()
                except StoreUnavailable as exc:
                    log.warning("import %s: progress not recorded yet: %s", import_id, exc)

        keeper = asyncio.create_task(flusher())
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(pending))):
                    group.create_task(worker())
            summary.left = total - counter["done"]
        except BaseException:
            # Ctrl-C, shutdown, the store gone: what is left waits for a resume.
            summary.left = total - counter["done"]
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                # What finished is kept, Ctrl-C included (a line not kept costs no carrier
                # call when it runs again: the pipeline finds it unchanged).
                await asyncio.shield(self._stopped(import_id, summary, flush, alive))
            finally:
                progress.close()
        return summary

    async def _stopped(
        self, import_id: str, summary: Summary, flush: Any, alive: dict[str, Any]
    ) -> None:
        """The lines finished recorded, and the import's state and report (unless another
        run holds the import now: its own are left as they are)."""
        await flush()
        if summary.error != TAKEN_OVER:
            await self.imports.finish(import_id, summary.state, summary.as_json(), alive["lease"])

    async def _line(self, row: Row, planned: str, as_of: datetime) -> LineDone | None:
        """One line applied (its outcome), or ``None``: the carrier (or the state store)
        stayed unavailable."""
        for attempt in range(MAX_ATTEMPTS):
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if isinstance(row, DeviceRow):
                    changed = await self._device(row, as_of, first_seen=planned == CREATED)
                else:
                    changed = await self._location(row)
            except Superseded as exc:
                why = (
                    "an admin deleted the device since"
                    if exc.deleted
                    else "the device reported a newer location"
                )
                return LineDone(row.line, SUPERSEDED, why)
            except Unroutable as exc:
                return LineDone(row.line, FAILED, exc.message)
            except NumberOwned as exc:
                return LineDone(row.line, FAILED, f"number owned by device {exc.owner}")
            except UpstreamAuthError:
                raise  # the run's trouble (``apply``), not this line's
            except UpstreamUnavailable as exc:
                delay = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
                self._pause_until = max(self._pause_until, time.monotonic() + min(delay, 60.0))
                continue
            except UpstreamRejected as exc:
                return LineDone(row.line, FAILED, f"the carrier refused it: {exc.message}")
            except (UpstreamError, StoreUnavailable):
                # A timeout: the write may have landed; trying again settles it. Or the state
                # store failed for a moment (busy, failing over): the line's, not the run's.
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            return LineDone(row.line, planned if changed else UNCHANGED)
        log.warning(
            "line %d left for a resume: the carrier or the store stayed unavailable", row.line
        )
        return None

    async def _device(self, row: DeviceRow, as_of: datetime, *, first_seen: bool) -> bool:
        pipeline = self.pipeline
        stored = await pipeline.stored(row.aeui)
        if (
            stored is not None
            and not stored.confirmed
            and (stored.location_id, stored.caller_name, stored.telephone_number)
            == (row.location_id, row.caller_name, row.telephone_number)
        ):
            # A write of this very line whose answer was lost (a run killed mid-write): the
            # repair reads the carrier first and writes only when it does not hold it.
            await pipeline.repair(row.aeui)
        outcome = await pipeline.report(
            Report(
                alternate_end_user_id=row.aeui,
                caller_name=row.caller_name,
                telephone_number=row.telephone_number,
                observed_at=as_of,
                address=row.address,
            ),
            credential="import",
            first_seen=first_seen,
        )
        return outcome.changed

    async def _location(self, row: LocationRow) -> bool:
        return await self.pipeline.import_location(
            row.location_id, row.address, row.description, credential="import"
        )
