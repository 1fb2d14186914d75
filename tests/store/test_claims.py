"""claim / confirm / advance: the newest observation wins, across replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.dlr.binding import Binding
from gateway.store import open_store
from gateway.store.base import (
    DeviceDeleted,
    HistoryEntry,
    HistoryKind,
    HistoryRecord,
    number_key,
)
from gateway.store.errors import SchemaNotCurrent
from gateway.store.sql import SqlStateStore
from tests.store.conftest import Clock, Database
from tests.store.helpers import applied, at, binding, phone_of, run, seed, taken


async def _open(db: Database, **options: object) -> SqlStateStore:
    store = await open_store(db.url, create=True, **options)  # type: ignore[arg-type]
    assert isinstance(store, SqlStateStore)
    return store


def test_claim_wins_and_loses_by_observed_at(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            assert await store.get("device-1") is None

            won, previous, current = await store.claim(binding(observed=10), credential="device")
            assert (won, previous) == (True, None)
            assert current.version == 1 and not current.confirmed
            assert await store.get("device-1") == current

            # Older: refused, and answered with the newer row that refused it.
            older = await store.claim(binding(location_id="LOC2", observed=5), credential="device")
            assert not older.won
            assert older.previous == older.current == current

            # Equal and identical: applied idempotently, a new version, no history row.
            again = await store.claim(binding(observed=10), credential="device")
            assert again.won and again.previous == current and again.current.version == 2

            # Equal but different: applied.
            moved = await store.claim(
                binding(location_id="LOC3", observed=10), credential="admin-key-0"
            )
            assert moved.won and moved.current.location_id == "LOC3"

            # Newer: wins.
            newer = await store.claim(binding(location_id="LOC4", observed=11), credential="device")
            assert newer.won and newer.previous is not None
            assert newer.previous.location_id == "LOC3" and newer.current.version == 4

            stored = await store.get("device-1")
            assert stored is not None
            assert stored.location_id == "LOC4" and stored.observed_at == at(11)
            assert stored.address == binding(location_id="LOC4").address and stored.latitude == 35.7

            # A claim is not something the carrier took: no history of its own.
            assert await store.history("device-1") == []

    run(main())


def test_history_records_what_the_confirmation_says_the_carrier_took(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            first = await applied(store, binding(observed=1))
            second = await applied(store, binding(location_id="LOC2", observed=2), "admin-key-0")
            # A claim the carrier refused (never confirmed) leaves nothing behind.
            await store.claim(binding(location_id="LOC3", observed=3), credential="device")
            entries = await store.history("device-1")
            assert [(e.kind, e.from_location_id, e.to_location_id) for e in entries] == [
                ("applied", "LOC1", "LOC2"),
                ("applied", None, "LOC1"),
            ]
            assert entries[0].credential == "admin-key-0"
            assert entries[0].observed_at == at(2)
            assert entries[0].after == second.current.as_json()
            assert entries[1].after == first.current.as_json()
            # A write a newer claim overtook keeps its entry only with its observation time
            # (tests below): without one, nothing says where it stands among the others.
            late = HistoryRecord(
                "device-1", HistoryKind.APPLIED, "device", "report", None, {"locationId": "X"}, None
            )
            assert not await store.confirm("device-1", second.current.version, record=late)
            assert len(await store.history("device-1")) == 2
            stored = await store.get("device-1")
            assert stored is not None and not stored.confirmed

    run(main())


def _moves(entries: list[HistoryEntry]) -> list[tuple[str, str | None, str | None, object]]:
    return [(e.kind, e.from_location_id, e.to_location_id, e.observed_at) for e in entries]


def test_a_write_a_newer_claim_overtook_keeps_its_history_entry(db: Database) -> None:
    """The carrier took A, but B claimed the device before A's confirmation: A is not
    confirmed, yet its entry is kept, with its own observation time, before B's."""

    async def main() -> None:
        async with await _open(db) as store:
            await applied(store, binding(observed=1))
            a = await store.claim(binding(location_id="LOC2", observed=2), credential="device")
            b = await store.claim(binding(location_id="LOC3", observed=3), credential="device")
            assert not await store.confirm("device-1", a.current.version, record=taken(a))
            stored = await store.get("device-1")
            assert stored == b.current and not stored.confirmed  # B is still to be confirmed
            assert _moves(await store.history("device-1")) == [
                ("applied", "LOC1", "LOC2", at(2)),
                ("applied", None, "LOC1", at(1)),
            ]
            assert await store.confirm("device-1", b.current.version, record=taken(b))
            entries = await store.history("device-1")
            assert _moves(entries) == [
                ("applied", "LOC2", "LOC3", at(3)),
                ("applied", "LOC1", "LOC2", at(2)),
                ("applied", None, "LOC1", at(1)),
            ]
            assert entries[1].after == a.current.as_json()

    run(main())


def test_a_taking_confirmed_twice_is_recorded_once(db: Database) -> None:
    """A repair that finds the carrier holding an unconfirmed write confirms it with an
    ``applied`` record; when the write's own confirmation came first, the history says once
    that the carrier took it. A repair's own write is recorded, though, and so is another
    binding of the same observation (an admin's change)."""

    async def main() -> None:
        async with await _open(db) as store:
            await applied(store, binding(observed=1))
            a = await store.claim(binding(location_id="LOC2", observed=2), credential="device")
            assert await store.confirm("device-1", a.current.version, record=taken(a))
            late = dataclasses.replace(taken(a), credential="gateway", before=None)
            assert await store.confirm("device-1", a.current.version, record=late)
            assert _moves(await store.history("device-1")) == [
                ("applied", "LOC1", "LOC2", at(2)),
                ("applied", None, "LOC1", at(1)),
            ]
            repaired = HistoryRecord(
                "device-1",
                HistoryKind.REPAIRED,
                "gateway",
                "report",
                {"locationId": "LOC9"},
                a.current.as_json(),
                a.current.observed_at,
            )
            assert await store.confirm("device-1", a.current.version, record=repaired)
            b = await store.claim(binding(location_id="LOC3", observed=2), credential="admin-key-0")
            assert b.won
            assert await store.confirm("device-1", b.current.version, record=taken(b))
            assert _moves(await store.history("device-1")) == [
                ("applied", "LOC2", "LOC3", at(2)),
                ("repaired", "LOC9", "LOC2", at(2)),
                ("applied", "LOC1", "LOC2", at(2)),
                ("applied", None, "LOC1", at(1)),
            ]

    run(main())


def test_an_overtaken_write_is_not_recorded_after_a_newer_one(db: Database) -> None:
    """History never says the carrier took A after it recorded B (a later observation): a
    late confirmation of A then appends nothing. Nor does one of a device deleted since."""

    async def main() -> None:
        async with await _open(db) as store:
            await applied(store, binding(observed=1))
            a = await store.claim(binding(location_id="LOC2", observed=2), credential="device")
            b = await store.claim(binding(location_id="LOC3", observed=3), credential="device")
            assert await store.confirm("device-1", b.current.version, record=taken(b))
            assert not await store.confirm("device-1", a.current.version, record=taken(a))
            recorded = [
                ("applied", "LOC2", "LOC3", at(3)),
                ("applied", None, "LOC1", at(1)),
            ]
            assert _moves(await store.history("device-1")) == recorded
            # A newer claim, not yet confirmed, changes nothing: B is still the newer entry.
            await store.claim(binding(location_id="LOC4", observed=4), credential="device")
            assert not await store.confirm("device-1", a.current.version, record=taken(a))
            # Nor after a repair recorded of an observation as new as its own (C and D were
            # observed at once; D's claim came second).
            c = await store.claim(binding(location_id="LOC5", observed=5), credential="device")
            d = await store.claim(binding(location_id="LOC6", observed=5), credential="device")
            repaired = dataclasses.replace(taken(d, "gateway"), kind=HistoryKind.REPAIRED)
            assert await store.confirm("device-1", d.current.version, record=repaired)
            assert not await store.confirm("device-1", c.current.version, record=taken(c))
            assert [e.kind for e in await store.history("device-1")] == [
                "repaired",
                "applied",
                "applied",
            ]
            # A device deleted while its write was on its way: nothing to append it to.
            e = await store.claim(binding("device-2", observed=1), credential="device")
            await store.delete("device-2")
            assert not await store.confirm("device-2", e.current.version, record=taken(e))
            assert await store.history("device-2") == []

    run(main())


def test_overtaken_writes_among_confirmations_arriving_together(db: Database) -> None:
    """One batch: the current versions are confirmed with their records, the overtaken
    writes' records kept (unless a newer entry is recorded), in one batch still."""

    async def main() -> None:
        async with await _open(db) as store:
            fresh = await store.claim(binding("dev-0", observed=1), credential="device")
            overtaken = await store.claim(binding("dev-1", observed=1), credential="device")
            await store.claim(binding("dev-1", "LOC2", observed=2), credential="device")
            late = await store.claim(binding("dev-2", observed=1), credential="device")
            newer = await store.claim(binding("dev-2", "LOC2", observed=2), credential="device")
            assert await store.confirm("dev-2", newer.current.version, record=taken(newer))
            plain = await store.claim(binding("dev-3", observed=1), credential="device")
            await store.claim(binding("dev-3", "LOC2", observed=2), credential="device")
            before = store._confirms.batches
            answers = await asyncio.gather(
                store.confirm("dev-0", fresh.current.version, record=taken(fresh)),
                store.confirm("dev-1", overtaken.current.version, record=taken(overtaken)),
                store.confirm("dev-2", late.current.version, record=taken(late)),
                store.confirm("dev-3", plain.current.version),
            )
            assert answers == [True, False, False, False]
            assert store._confirms.batches - before == 1
            assert _moves(await store.history("dev-0")) == [("applied", None, "LOC1", at(1))]
            assert _moves(await store.history("dev-1")) == [("applied", None, "LOC1", at(1))]
            assert _moves(await store.history("dev-2")) == [("applied", "LOC1", "LOC2", at(2))]
            assert await store.history("dev-3") == []
            stored = await store.get("dev-1")
            assert stored is not None and stored.location_id == "LOC2" and not stored.confirmed

    run(main())


def _refuse_history_inserts(backend: str) -> list[str]:
    """DDL that makes every history insert fail as a lost database would (an unavailable
    store): what the state store must pass on, not swallow."""
    if backend == "postgresql":
        return [
            "CREATE FUNCTION refuse_history() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'history refused' USING ERRCODE = '57P01'; END $$",
            "CREATE TRIGGER refuse_history BEFORE INSERT ON history "
            "FOR EACH ROW EXECUTE FUNCTION refuse_history()",
        ]
    # SQLite: a trigger that writes to a view fails with an OperationalError.
    return [
        "CREATE VIEW refused AS SELECT 1 AS x",
        "CREATE TRIGGER refuse_history BEFORE INSERT ON history "
        "BEGIN INSERT INTO refused (x) VALUES (1); END",
    ]


def test_a_failure_to_keep_an_overtaken_write_fails_the_confirmation(db: Database) -> None:
    """The statement that keeps an overtaken write's entry fails: the confirmation fails
    with the store's error (the gateway answers 503), nothing is swallowed."""
    from gateway.store import StoreUnavailable

    async def main() -> None:
        async with await _open(db) as store:
            a = await store.claim(binding(observed=1), credential="device")
            await store.claim(binding(location_id="LOC2", observed=2), credential="device")
            async with store._unit() as connection:
                for statement in _refuse_history_inserts(db.backend):
                    await connection.execute(sa.text(statement))
            with pytest.raises(StoreUnavailable):
                await store.confirm("device-1", a.current.version, record=taken(a))
            # Without a record there is nothing to keep: no statement of the kind runs.
            assert not await store.confirm("device-1", a.current.version)
            assert await store.history("device-1") == []

    run(main())


def test_claim_keeps_microseconds_and_time_zones(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            first = binding(observed=0.000001)
            await store.claim(first, credential="device")
            # One microsecond older, written in another zone: still older.
            from datetime import timedelta, timezone

            older = first.observed_at.astimezone(timezone(timedelta(hours=-5))) - timedelta(
                microseconds=1
            )
            lost = await store.claim(dataclasses.replace(first, observed_at=older), credential="d")
            assert not lost.won
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(0.000001)
            with pytest.raises(ValueError, match="timezone-aware"):
                await store.claim(
                    dataclasses.replace(first, observed_at=older.replace(tzinfo=None)),
                    credential="d",
                )

    run(main())


def test_concurrent_claims_from_two_replicas(db: Database) -> None:
    """Two engines race claims for the same devices: the newest always ends up stored."""
    rng = random.Random(8)

    async def main() -> None:
        async with await _open(db) as one, await _open(db) as two:
            for round_ in range(6):
                aeui = f"racer-{round_}"
                times = rng.sample(range(1000), 24)
                claims = [
                    (store, binding(aeui, f"LOC{t}", observed=t))
                    for t, store in zip(times, [one, two] * 12, strict=True)
                ]
                results = await asyncio.gather(
                    *(store.claim(b, credential="device") for store, b in claims)
                )
                stored = await one.get(aeui)
                assert stored is not None
                assert stored.observed_at == at(max(times))
                assert stored.location_id == f"LOC{max(times)}"

                winners = sorted((r for r in results if r.won), key=lambda r: r.current.version)
                # Each win is one version: a total order of writes, oldest observation first.
                assert [r.current.version for r in winners] == list(range(1, len(winners) + 1))
                observed = [r.current.observed_at for r in winners]
                assert observed == sorted(observed)
                for result, (_store, claimed) in zip(results, claims, strict=True):
                    if result.won:
                        assert result.previous is None or (
                            result.previous.observed_at <= claimed.observed_at
                        )
                    else:  # refused only by a newer observation already stored
                        assert result.previous is not None
                        assert result.previous.observed_at > claimed.observed_at
                # Across both replicas the device took its number once, first come.
                entries = await two.history(number_key(phone_of(aeui)), limit=100)
                assert [(e.kind, e.after) for e in entries] == [
                    ("number_owned", {"owner": aeui, "shared": False})
                ]

    run(main())


def test_confirm_only_the_version_still_stored(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            first = await store.claim(binding(observed=1), credential="device")
            second = await store.claim(binding("device-1", "LOC2", observed=2), credential="device")
            assert not await store.confirm("device-1", first.current.version)
            stored = await store.get("device-1")
            assert stored is not None and not stored.confirmed
            assert await store.confirm("device-1", second.current.version)
            stored = await store.get("device-1")
            assert stored is not None and stored.confirmed
            assert not await store.confirm("nobody", 1)
            # A new claim is unconfirmed until the carrier holds it.
            third = await store.claim(binding("device-1", "LOC3", observed=3), credential="device")
            assert third.current.confirmed is False
            stored = await store.get("device-1")
            assert stored is not None and not stored.confirmed

    run(main())


def test_confirmations_arriving_together_share_one_statement(db: Database, clock: Clock) -> None:
    """Each caller gets its own answer from the one statement: a stale version is refused,
    an unknown device too, the current ones confirmed with the check time."""

    async def main() -> None:
        async with await _open(db, clock=clock) as store:
            claims = [
                await store.claim(binding(f"dev-{i}", observed=1), credential="device")
                for i in range(5)
            ]
            stale = await store.claim(binding("dev-0", "LOC2", observed=2), credential="device")
            clock.advance(30)
            before = store._confirms.batches
            answers = await asyncio.gather(
                store.confirm("dev-0", claims[0].current.version),  # superseded by `stale`
                *(store.confirm(c.current.aeui, c.current.version) for c in claims[1:]),
                store.confirm("nobody", 1),
            )
            assert answers == [False, True, True, True, True, False]
            assert store._confirms.batches - before == 1
            for c in claims[1:]:
                stored = await store.get(c.current.aeui)
                assert stored is not None and stored.confirmed
            async with store._unit(read_only=True) as connection:
                checked = (
                    await connection.execute(
                        sa.text("SELECT checked_at FROM devices WHERE aeui = 'dev-1'")
                    )
                ).scalar_one()
            assert checked == int(clock.now.timestamp() * 1_000_000)
            zero = await store.get("dev-0")
            assert zero is not None and not zero.confirmed and zero == stale.current

    run(main())


def test_advance_moves_forward_only(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            claimed = (await store.claim(binding(observed=10), credential="device")).current
            assert await store.advance("device-1", at(20))
            assert await store.advance("device-1", at(20))  # equal: fine
            assert not await store.advance("device-1", at(15))  # older: superseded
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(20)
            assert stored.version == claimed.version  # not a change of binding
            assert not await store.advance("nobody", at(30))
            # Guarded by version: a binding changed since it was read is not advanced.
            moved = await store.claim(binding("device-1", "LOC2", observed=25), credential="d")
            assert not await store.advance("device-1", at(30), version=claimed.version)
            assert await store.advance("device-1", at(30), version=moved.current.version)
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(30)
            # No history for unchanged reports (nor for claims: see above).
            assert await store.history("device-1") == []
            # Concurrent advances of one device: the newest is kept.
            await asyncio.gather(*(store.advance("device-1", at(t)) for t in range(31, 60)))
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(59)

    run(main())


def test_advance_group_commits(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            aeuis = await seed(store, 1000, observed=0)
            # One statement per batch (the driver's own: no SQLAlchemy event sees it).
            results = await asyncio.gather(*(store.advance(a, at(5)) for a in aeuis))
            assert all(results)
            calls, batches = store.advance_stats
            assert calls == 1000 and batches <= 10, batches  # a handful of statements

            # Mixed: some older than stored (refused), none moved backwards.
            times = [3 if i % 3 == 0 else 9 for i in range(len(aeuis))]
            results = await asyncio.gather(
                *(store.advance(a, at(t)) for a, t in zip(aeuis, times, strict=True))
            )
            assert results == [t == 9 for t in times]
            assert store.advance_stats[1] - batches <= 10
            for i in (0, 1, 3, 998):
                stored = await store.get(aeuis[i])
                assert stored is not None
                assert stored.observed_at == at(5 if i % 3 == 0 else 9)

    run(main())


def test_advance_fails_every_caller_when_the_store_fails(db: Database) -> None:
    """A failed batch answers each waiting caller with the error (not a hang)."""

    async def main() -> None:
        async with await _open(db) as store:
            aeuis = await seed(store, 3)

            async def boom(_batch: object) -> dict[str, bool]:
                from gateway.store import StoreUnavailable

                raise StoreUnavailable("down")

            store._advances._flush = boom  # type: ignore[assignment]
            results = await asyncio.gather(
                *(store.advance(a, at(1)) for a in aeuis), return_exceptions=True
            )
            assert [type(r).__name__ for r in results] == ["StoreUnavailable"] * 3

    run(main())


def test_delete_forgets_the_device(db: Database) -> None:
    async def main() -> None:
        async with await _open(db) as store:
            claimed = await store.claim(binding(observed=1), credential="device")
            assert await store.delete("device-1") == claimed.current
            assert await store.get("device-1") is None
            assert await store.delete("device-1") is None

    run(main())


def test_a_refused_moves_order_is_kept_apart_from_its_place(db: Database) -> None:
    """A binding restored after a refused move keeps its own ``observed_at`` (its place's
    age) and orders by the refused report (``ordered_at``): older claims and advances lose."""

    async def main() -> None:
        async with await _open(db) as store:
            await store.claim(binding(observed=10), credential="device")
            assert (await store.claim(binding("device-1", "LOC2", observed=30), credential="d")).won
            restored = dataclasses.replace(binding(observed=10), ordered_at=at(30))
            back = await store.claim(restored, credential="device")
            assert back.won and await store.get("device-1") == back.current
            assert (back.current.observed_at, back.current.ordered_at) == (at(10), at(30))
            older = await store.claim(binding("device-1", "LOC3", observed=20), credential="d")
            assert not older.won and older.current == back.current
            assert not await store.advance("device-1", at(20))
            assert await store.advance("device-1", at(30))
            stored = await store.get("device-1")
            assert stored is not None and stored.observed_at == at(30)
            assert (await store.claim(binding("device-1", "LOC3", observed=31), credential="d")).won

    run(main())


def test_a_deleted_device_is_created_again_only_by_a_newer_claim(db: Database) -> None:
    """An admin's deletion leaves a tombstone at the later of its time and the device's
    newest report; a refused creation's delete leaves none; the history purge removes them."""

    async def main() -> None:
        async with await _open(db) as store:
            await store.claim(binding(observed=10), credential="device")
            assert await store.delete("device-1", deleted_at=at(20)) is not None
            with pytest.raises(DeviceDeleted) as raised:
                await store.claim(binding(observed=19), credential="device")
            assert raised.value.deleted_at == at(20)
            assert await store.get("device-1") is None
            # Read with the row, as a report reads it: no row, and when it was deleted.
            assert await store.get_or_deleted("device-1") == (None, at(20))
            assert await store.get_or_deleted("device-9") == (None, None)
            assert (await store.claim(binding(observed=20), credential="device")).won
            found, deleted_at = await store.get_or_deleted("device-1")
            assert (found, deleted_at) == (await store.get("device-1"), None)
            # Deleted at 40, its newest report at 50: the report's time is the order.
            await store.claim(binding("device-2", observed=50), credential="device")
            await store.delete("device-2", deleted_at=at(40))
            with pytest.raises(DeviceDeleted):
                await store.claim(binding("device-2", observed=45), credential="device")
            # An earlier deletion does not move a tombstone back.
            await store.delete("device-2", deleted_at=at(30))
            with pytest.raises(DeviceDeleted):
                await store.claim(binding("device-2", observed=45), credential="device")
            await store.claim(binding("device-3", observed=10), credential="device")
            await store.delete("device-3")
            assert (await store.claim(binding("device-3", observed=5), credential="device")).won
            await store.purge_history(at(60))
            assert (await store.claim(binding("device-2", observed=45), credential="device")).won

    run(main())


def test_binding_json_is_what_history_records() -> None:
    b = binding()
    assert b.as_json()["locationId"] == "LOC1"
    assert b.same_binding(dataclasses.replace(b, observed_at=at(99), version=7))
    assert not b.same_binding(dataclasses.replace(b, caller_name="Bob"))
    assert not b.same_binding(None)
    assert isinstance(b, Binding)


def test_same_binding_is_equal_history_json() -> None:
    """``same_binding`` compares without building ``as_json``: the same verdict, whatever
    field differs (an address field set, emptied or left out, a coordinate, a time)."""
    b = binding()
    assert b.address is not None
    variants = [
        dataclasses.replace(b, observed_at=at(99), version=7, confirmed=True, status="x"),
        dataclasses.replace(b, carrier_endpoint_id="other"),
        dataclasses.replace(b, location_id="LOC2"),
        dataclasses.replace(b, address=None),
        dataclasses.replace(b, address=dataclasses.replace(b.address, plus_four="1234")),
        dataclasses.replace(b, address=dataclasses.replace(b.address, plus_four="")),
        dataclasses.replace(b, address=dataclasses.replace(b.address)),
        dataclasses.replace(b, telephone_number="+15550000000"),
        dataclasses.replace(b, latitude=1.0, longitude=2.0),
        dataclasses.replace(b, coordinates_source="gps", accuracy_meters=3.0),
        dataclasses.replace(b, heard_at=at(5), attested=True, source="admin"),
    ]
    for one in [b, *variants]:
        for other in [b, *variants]:
            assert one.same_binding(other) == (one.as_json() == other.as_json())


def test_only_the_batched_statements_commit_asynchronously_on_postgresql(db: Database) -> None:
    """Advances (a time moving forward) and confirmations (lost: the reconciler checks the
    binding again) skip the WAL flush wait; a claim never does."""
    if db.backend != "postgresql":
        pytest.skip("PostgreSQL's synchronous_commit")
    # The test cluster turns it off server-wide: what counts is who set it.
    query = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'"

    async def main() -> None:
        async with await _open(db) as store:
            await seed(store, 3)
            assert await store.advance("dev-00000", at(5))
            assert len(store._kept_connections) == 1
            row = await store._kept_connections[0].driver.fetchrow(query)
            assert (row["setting"], row["source"]) == ("off", "session")
            for _ in range(3):  # whichever pooled connection a unit of work gets
                async with store._unit() as connection:
                    shown = (await connection.execute(sa.text(query))).one()
                assert shown.source != "session"

    run(main())


@pytest.mark.parametrize("where", ["memory", "file"])
def test_the_kept_sqlite_advance_connection_survives_a_failed_statement(
    where: str, tmp_path: Path
) -> None:
    """The advance keeps its own connection; a statement that fails on it loses nothing (an
    in-memory database is that connection) and the next advance and unit of work run."""
    url = "sqlite+aiosqlite://" if where == "memory" else f"sqlite+aiosqlite:///{tmp_path}/s.db"

    async def main() -> None:
        store = await SqlStateStore.connect(url, create=True)
        try:
            await seed(store, 3)
            assert await store.advance("dev-00000", at(5))
            assert len(store._kept_connections) == 1
            async with store._unit() as connection:  # the table gone for a moment
                await connection.execute(sa.text("ALTER TABLE devices RENAME TO gone"))
            with pytest.raises(SchemaNotCurrent):
                await store.advance("dev-00001", at(5))
            assert store._kept_connections == []  # dropped: the next advance takes a fresh one
            async with store._unit() as connection:
                await connection.execute(sa.text("ALTER TABLE gone RENAME TO devices"))
            assert await store.advance("dev-00001", at(6))
            stored = await store.get("dev-00000")  # the database, and its rows, are there
            assert stored is not None and stored.observed_at == at(5)
            moved = await store.get("dev-00001")
            assert moved is not None and moved.observed_at == at(6)
            won, _, _ = await store.claim(binding("dev-00002", observed=7), credential="device")
            assert won
        finally:
            await store.close()

    run(main())


def test_a_claim_that_fails_part_way_writes_nothing(db: Database) -> None:
    """The device row, its number's ownership and that one's history row commit together or
    not at all (on SQLite the claim runs its own transaction on the store's kept
    connection)."""

    async def main() -> None:
        async with await _open(db) as store:
            async with store._unit() as connection:  # the history table gone for a moment
                await connection.execute(sa.text("ALTER TABLE history RENAME TO gone"))
            with pytest.raises(SchemaNotCurrent):
                await store.claim(binding("dev-x", observed=1), credential="device")
            async with store._unit() as connection:
                await connection.execute(sa.text("ALTER TABLE gone RENAME TO history"))
            assert await store.get("dev-x") is None  # the device row was rolled back too
            assert await store.number(phone_of("dev-x")) is None  # and the ownership
            won, previous, current = await store.claim(
                binding("dev-x", observed=1), credential="device"
            )
            assert won and previous is None and current.version == 1
            history = await store.history(number_key(phone_of("dev-x")))
            assert [e.kind for e in history] == ["number_owned"]

    run(main())


def test_two_replicas_racing_for_a_free_number_give_it_to_one_device(db: Database) -> None:
    """Devices that report one free number at once, through two stores: the first to claim
    owns it, every other is refused (and writes nothing), whichever replica it went through."""
    from gateway.store.base import NumberOwned

    async def main() -> None:
        async with await _open(db) as one, await _open(db) as two:
            for round_ in range(4):
                number = f"+1919555{round_:04d}"
                racers = [
                    (store, binding(f"r{round_}-{i}", observed=1, phone=number))
                    for i, store in enumerate([one, two] * 4)
                ]
                results = await asyncio.gather(
                    *(store.claim(b, credential="device") for store, b in racers),
                    return_exceptions=True,
                )
                won = [
                    b.aeui
                    for (_, b), r in zip(racers, results, strict=True)
                    if not isinstance(r, BaseException)
                ]
                assert len(won) == 1, results
                assert all(
                    isinstance(r, NumberOwned) for r in results if isinstance(r, BaseException)
                )
                state = await one.number(number)
                assert state is not None and state.owner == won[0]
                for _, b in racers:
                    assert (await two.get(b.aeui) is not None) == (b.aeui == won[0])

    run(main())
