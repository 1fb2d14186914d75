"""Who is calling 911, and where the gateway believes they are: the calling number read
(``normalize_number``), the caller index in memory (``CallerIndex``) and the store asked
first within a bound (``CallerLocator``); docs/architecture.md, "The call-time location
query". The domain: no Starlette, no SQL."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.dlr.binding import Binding, known_time, newest
from gateway.dlr.coordinates import DISPATCHABLE, radius_meters
from gateway.dlr.numbers import dialled_number
from gateway.lru import Lru
from gateway.store.base import NumberState
from gateway.store.errors import StoreUnavailable

log = logging.getLogger("gateway.emergency")

#: Longest calling number looked at (a SIP URI with parameters fits easily).
MAX_NUMBER_LENGTH = 256
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=8192)
def _normalized(text: str) -> str | None:
    lowered = text.lower()
    if "<" in text and text.endswith(">"):  # a name-addr: "Alice" <sip:+1202…@host>
        text = text[text.rindex("<") + 1 : -1]
        lowered = text.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            # The user part: before the host, and before tel/user parameters.
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
            break
    return dialled_number(text)


def normalize_number(raw: str | None) -> str | None:
    """``raw`` as E.164, or ``None`` when it is not a callback number the gateway serves
    (``gateway.dlr.numbers``: the rule reports are checked by).

    Accepts ``2025550143``, ``12025550143``, ``+12025550143`` (also as `` 12025550143``: an
    unencoded ``+`` in a query string arrives as a space), separators (``202-555-0143``,
    ``(202) 555-0143``), and the user part of ``sip:``, ``sips:`` and ``tel:`` URIs
    (``sip:+12025550143@carrier.example;user=phone``, ``tel:+1-202-555-0143``).
    """
    if raw is None or len(raw) > MAX_NUMBER_LENGTH:
        return None
    return _normalized(raw.strip())


def _order(record: Binding) -> tuple[datetime | None, int]:
    """A binding's place in its device's order (``newest``: a refused move's restored
    binding is newer than the refused one, though its place's own time is older)."""
    at = record.observed_at  # read once: a property (the instants are packed)
    if at is not None and record.ordered_at is not None:
        at = newest(record)
    return at, record.version


def _newer(candidate: Binding, than: Binding) -> bool:
    """Whether ``candidate`` replaces ``than`` for the same device (later claims win ties)."""
    return _order(candidate) >= _order(than)


def _answer(record: Binding) -> Binding:
    """No answer carries the street address (a held binding is the pipeline's, with one)."""
    return record if record.address is None else dataclasses.replace(record, address=None)


def _heard(binding: Binding) -> tuple[bool, datetime, int, str]:
    return binding.attested, binding.heard_at or _NEVER, binding.version, binding.aeui


def freshest(bindings: list[Binding]) -> Binding:
    """The binding of the device the gateway heard from last (a shared line: several
    devices), by the gateway's own clock: a device cannot win by its ``observedAt``. A device
    whose token vouched for the number comes before any that did not (an owner by first
    report cannot outshout the device the number was issued to)."""
    return max(bindings, key=_heard)


class CallerIndex:
    """Callback number -> the devices bound to it, in bounded process memory.

    Keyed by device, least recently learned evicted first, so a device that reports keeps
    its place. With ``GATEWAY_DATABASE_URL=none`` it is the only source of answers; with a
    store, the fallback when the store is slow or down. What it holds is what this replica
    saw: a device another replica moved is stale here until this one sees it again.
    """

    def __init__(self, maxsize: int = 200_000) -> None:
        self.maxsize = max(1, maxsize)
        #: Least recently learned first (reads do not refresh: ``peek``); an evicted device
        #: leaves its number too.
        self._devices: Lru[str, Binding] = Lru(
            self.maxsize, lambda aeui, evicted: self._unlink(aeui, evicted.telephone_number)
        )
        #: Number -> its device's AEUI, or a set of them for a shared line.
        self._numbers: dict[str, str | set[str]] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def get(self, aeui: str) -> Binding | None:
        devices = self._devices
        return _answer(devices.peek(aeui)) if aeui in devices else None

    def learn(self, binding: Binding) -> None:
        """Remember ``binding`` unless a newer one of the same device is known."""
        if binding.address is not None:
            # No answer carries the street address: one dict per device less (memory).
            binding = dataclasses.replace(binding, address=None)
        self._keep(binding)

    def hold(self, binding: Binding) -> None:
        """Remember a binding the carrier holds (the pipeline's own object, not a copy),
        unless a newer one of the same device is known: every confirmation and every
        unchanged report of a cached binding comes here."""
        if binding.observed_at is not None:
            self._keep(binding)

    def _keep(self, binding: Binding) -> None:
        aeui = binding.aeui
        devices = self._devices
        known = devices.pop(aeui, None)  # re-inserted below: the most recently learned
        if known is not None:
            if not _newer(binding, known):
                devices[aeui] = known  # seen again: not the next to go
                return
            if known.telephone_number != binding.telephone_number:
                self._unlink(aeui, known.telephone_number)
        devices[aeui] = binding  # may evict the least recently learned (and unlink it)
        number = binding.telephone_number
        members = self._numbers.get(number)
        if members is None:
            self._numbers[number] = aeui  # the common case: one device per number
        elif isinstance(members, str):
            if members != aeui:
                self._numbers[number] = {members, aeui}
        else:
            members.add(aeui)

    def forget(self, aeui: str) -> None:
        known = self._devices.pop(aeui, None)
        if known is not None:
            self._unlink(aeui, known.telephone_number)

    def restrict(self, state: NumberState) -> None:
        """An admin changed who may use a number: forget the devices that no longer may."""
        members = self._numbers.get(state.telephone_number, ())
        for aeui in [members] if isinstance(members, str) else list(members):
            if state.refuses(aeui) and not self._devices.peek(aeui).attested:
                self.forget(aeui)

    def lookup(self, telephone_number: str) -> list[Binding]:
        """Every known device with this callback number, in ``freshest``'s order."""
        return [_answer(b) for b in self.remembered(telephone_number)]

    def remembered(self, telephone_number: str) -> list[Binding]:
        """``lookup``'s bindings as kept, uncopied: a held one has its street address, for
        the call's event (which would otherwise read it back); no answer carries it."""
        members = self._numbers.get(telephone_number, ())
        if isinstance(members, str):
            return [self._devices.peek(members)]
        found = [self._devices.peek(a) for a in members]
        found.sort(key=_heard, reverse=True)
        return found

    def _unlink(self, aeui: str, number: str) -> None:
        members = self._numbers.get(number)
        if members is None:
            return
        if isinstance(members, str):
            if members == aeui:
                del self._numbers[number]
            return
        members.discard(aeui)
        if len(members) == 1:
            self._numbers[number] = next(iter(members))  # a str costs nothing more
        elif not members:
            del self._numbers[number]


class CallerStore(Protocol):
    """What the locator needs of the state store."""

    async def callers(self, telephone_number: str, *, limit: int = 20) -> list[Binding]: ...


@dataclass(frozen=True, slots=True)
class Located:
    """Where the devices with one callback number are, and where that answer came from.

    A binding may have its street address (the store's, or one held in memory): the
    answer and the history never carry it; the call's event does."""

    bindings: list[Binding]
    #: ``store`` (the shared state store answered in time) or ``cache`` (process memory).
    source: str
    #: Why the store's answer was not used (``timeout``, ``unavailable``, ``busy``), or
    #: ``None``: it was, or there is no store.
    fallback: str | None = None


@dataclass(slots=True, eq=False)
class CallerLocator:
    """The store under a deadline, the index when the store cannot answer in time.

    A store read that misses its deadline is not cancelled (cancelling a statement costs
    the connection; ``gateway.store.sql`` runs it to its end): it is left to finish in the
    background, and while ``max_in_flight`` of them are outstanding, queries skip the store
    rather than queue behind a database that has stalled.
    """

    index: CallerIndex
    store: CallerStore | None
    _: dataclasses.KW_ONLY
    timeout: float
    max_in_flight: int = 16
    limit: int = 20
    #: The store is written by this process only (embedded SQLite): every binding in it
    #: that this process touched since it started is in the index, as new as in the
    #: store, so an index hit needs no read (and SQLite's one-at-a-time reads, behind
    #: the history writes, cost milliseconds).
    single_writer: bool = False
    _in_flight: set[asyncio.Task[list[Binding]]] = dataclasses.field(
        default_factory=set, init=False, repr=False
    )

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def locate(self, telephone_number: str) -> Located:
        if self.store is None:
            return Located(self.index.remembered(telephone_number), "cache")
        if self.single_writer:
            known = self.index.remembered(telephone_number)
            if known:
                return Located(known, "cache")
        if len(self._in_flight) >= self.max_in_flight:
            return Located(self.index.remembered(telephone_number), "cache", "busy")
        task = asyncio.get_running_loop().create_task(
            _read(self.store, telephone_number, self.limit), name="emergency-query-store"
        )
        self._in_flight.add(task)
        task.add_done_callback(_settled(self._in_flight))
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if not done:
            return Located(self.index.remembered(telephone_number), "cache", "timeout")
        try:
            rows = task.result()
        except Exception as exc:
            # Whatever went wrong, a 911 query still gets the best answer there is.
            reason = "unavailable"
            if not isinstance(exc, StoreUnavailable):
                reason = "error"
                log.error("emergency query: the store read failed: %s", type(exc).__name__)
            return Located(self.index.remembered(telephone_number), "cache", reason)
        return Located(rows, "store")

    async def aclose(self) -> None:
        """Wait briefly for store reads still running, then cancel what is left."""
        pending = set(self._in_flight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=1.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def _read(
    store: CallerStore, telephone_number: str, limit: int
) -> Coroutine[Any, Any, list[Binding]]:
    return store.callers(telephone_number, limit=limit)


def _settled(
    tasks: set[asyncio.Task[list[Binding]]],
) -> Callable[[asyncio.Task[list[Binding]]], None]:
    def done(task: asyncio.Task[list[Binding]]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so a late failure is not logged as unhandled

    return done


def answer_radius(binding: Binding) -> int:
    """The answer's ``radius``: the device's own GPS accuracy, else the carrier's default."""
    found = radius_meters(binding.coordinates_source, binding.accuracy_meters)
    assert found is not None, "answered only with dispatchable coordinates"
    return found


def has_dispatchable_coordinates(binding: Binding) -> bool:
    """Coordinates that locate the caller: the device's own fix or a street-level geocode.

    Coarser ones (a ZIP or city centroid) are never answered as the caller's position;
    ``location_id`` alone is.
    """
    return (
        binding.coordinates_source in DISPATCHABLE
        and binding.latitude is not None
        and binding.longitude is not None
        and math.isfinite(binding.latitude)
        and math.isfinite(binding.longitude)
    )


def age_seconds(binding: Binding, now: datetime) -> float | None:
    """How old the location is: seconds since the device's newest report; ``None`` when no
    report placed it (an admin's endpoint: ``known_time``)."""
    at = known_time(binding.observed_at)
    return None if at is None else max(0.0, (now - at).total_seconds())
