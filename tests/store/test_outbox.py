"""The outbox: events with their deliveries, leased claims, retries, stale marks (both backends)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.dlr.binding import UNKNOWN_OBSERVED_AT
from gateway.store import open_store
from gateway.store.base import HistoryKind, HistoryRecord
from gateway.store.deliveries import EMAIL_TARGET, Outcome, page_query
from gateway.store.outbox import AddressLookup, NewEvent, OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import deliveries, events, history
from tests.store.conftest import Database
from tests.store.helpers import binding, run


class Now:
    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def _open(
    db: Database, clock: Now, max_age: float = 3600.0
) -> tuple[SqlStateStore, OutboxStore]:
    store = await open_store(db.url, create=True)
    assert isinstance(store, SqlStateStore)
    return store, OutboxStore(store, clock=clock, max_age=max_age)


def _event(id: str, type: str = "emergency_call", at: float = 1_750_000_000.0) -> NewEvent:
    return NewEvent(id, type, f'{{"id":"{id}"}}', at, email=type == "emergency_call")


def test_an_event_gets_one_delivery_per_subscribed_webhook_and_is_written_once(
    db: Database,
) -> None:
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_webhook("wh_b", "http://127.0.0.1:1/b", ["device_stale"], "s", None)
            assert await outbox.add_events([_event("evt_1")], email=(EMAIL_TARGET,)) == ["evt_1"]
            # The same id again (a retried write, another replica): nothing new.
            assert await outbox.add_events([_event("evt_1")], email=(EMAIL_TARGET,)) == []
            assert await outbox.add_events(
                [_event("evt_2", "device_stale")], email=(EMAIL_TARGET,)
            ) == ["evt_2"]
            page = await outbox.page(limit=10)
            targets = {e.id: sorted(d.target for d in ds) for e, ds in page}
            assert targets == {"evt_1": sorted(["wh_a", EMAIL_TARGET]), "evt_2": ["wh_b"]}
            assert await outbox.backlog() == (3, 0.0)

    run(main())


def test_an_event_emitted_twice_in_one_batch_is_written_once_with_its_deliveries(
    db: Database,
) -> None:
    # Once, the delivery rows were made per event emitted, so the second copy broke the
    # (event, target) key and the whole batch, other calls' events with it, failed.
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            batch = [_event("evt_1"), _event("evt_2"), _event("evt_1")]
            assert await outbox.add_events(batch, email=(EMAIL_TARGET,)) == ["evt_1", "evt_2"]
            assert await outbox.backlog() == (4, 0.0)

    run(main())


def test_claims_are_leased_to_one_owner_until_the_lease_ends(db: Database) -> None:
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_events([_event(f"evt_{i}") for i in range(10)])
            first, second = await asyncio.gather(
                outbox.claim("replica-1", lease=30, limit=6),
                outbox.claim("replica-2", lease=30, limit=6),
            )
            ids = [c.delivery.id for c in first + second]
            assert len(ids) == len(set(ids)) == 10  # no delivery claimed twice
            assert await outbox.claim("replica-3", lease=30) == []
            # Replica 1 dies; its lease ends and replica 3 takes its deliveries over.
            clock.now += 31
            taken = await outbox.claim("replica-3", lease=30, limit=20)
            assert len(taken) == 10
            # A late answer from a lease lost is not recorded as the new owner's.
            assert await outbox.finish("replica-1", [Outcome(first[0].delivery, 200)]) != [
                "delivered"
            ]
            assert await outbox.finish("replica-3", [Outcome(taken[0].delivery, 200)]) == [
                "delivered"
            ]
            assert (await outbox.backlog())[0] == 9

    run(main())


def test_failed_attempts_back_off_until_the_delivery_expires_then_an_admin_retries(
    db: Database,
) -> None:
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock, max_age=100)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_events([_event("evt_1", at=clock.now)])
            (claimed,) = await outbox.claim("r", lease=30)
            (state,) = await outbox.finish(
                "r", [Outcome(claimed.delivery, 503, "HTTP 503", retry_in=40)]
            )
            assert state == "pending"
            assert await outbox.claim("r", lease=30) == []  # not due for 40 s
            clock.now += 40
            (claimed,) = await outbox.claim("r", lease=30)
            assert claimed.delivery.attempts == 1 and claimed.delivery.last_status == 503
            # The next attempt would come after the delivery's 100 s: it fails now.
            (state,) = await outbox.finish(
                "r", [Outcome(claimed.delivery, None, "ConnectError", retry_in=80)]
            )
            assert state == "failed"
            clock.now += 1000
            assert await outbox.claim("r", lease=30) == []
            ((_, (delivery,)),) = await outbox.page(limit=5)
            assert (delivery.state, delivery.attempts, delivery.last_error) == (
                "failed",
                2,
                "ConnectError",
            )
            assert await outbox.retry("evt_1") == 1
            (claimed,) = await outbox.claim("r", lease=30)
            assert claimed.event.id == "evt_1"

    run(main())


def test_events_past_their_retention_go_with_their_deliveries_unless_one_is_pending(
    db: Database,
) -> None:
    """Devices drive events (a conflicting fix on every report): kept for ever, the outbox
    only grew. An old event whose deliveries have ended goes; one still being delivered, and
    a recent one, stay."""

    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            start = clock.now
            await outbox.add_events([_event("evt_done", at=start), _event("evt_due", at=start)])
            await outbox.add_events([_event("evt_quiet", "device_stale", at=start)])
            for claimed in await outbox.claim("r", lease=30):
                if claimed.event.id == "evt_done":
                    assert await outbox.finish("r", [Outcome(claimed.delivery, 200)]) == [
                        "delivered"
                    ]
            await outbox.add_events([_event("evt_new", at=start + 100)])
            assert await outbox.purge(start + 50) == 2
            assert sorted(e.id for e, _ in await outbox.page(limit=10)) == ["evt_due", "evt_new"]
            async with store.transaction() as connection:
                left = await connection.execute(sa.select(deliveries.c.event_id))
                assert sorted(left.scalars()) == ["evt_due", "evt_new"]
            assert await outbox.purge(start + 50) == 0

    run(main())


def test_newly_stale_devices_are_found_once_per_staleness(db: Database) -> None:
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await store.claim(binding("quiet", observed=0), credential="device")
            (row,) = await outbox.newly_stale(cutoff=4e9)
            assert row["aeui"] == "quiet"
            await outbox.mark_stale([(row["aeui"], row["heard_us"])])
            assert await outbox.newly_stale(cutoff=4e9) == []

    run(main())


def test_a_device_no_report_has_placed_is_never_stale(db: Database) -> None:
    """An admin's endpoint (a desk phone, observed at the epoch: no real observation) has no
    newest report to grow old; a device that reported once does."""

    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            desk = dataclasses.replace(binding("desk"), observed_at=UNKNOWN_OBSERVED_AT)
            await store.claim(desk, credential="admin")
            await store.claim(binding("laptop", observed=1_000), credential="device")
            assert [row["aeui"] for row in await outbox.newly_stale(cutoff=4e9)] == ["laptop"]

    run(main())


def test_a_rotated_secret_still_signs_for_its_overlap(db: Database) -> None:
    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["test_call"], "old", None)
            hook = await outbox.rotate_secret("wh_a", "new", overlap=60)
            assert hook is not None and hook.secrets(clock.now) == ("new", "old")
            assert hook.secrets(clock.now + 61) == ("new",)

    run(main())


async def _claims_and_finishes(store: SqlStateStore, clock: Now) -> list[Any]:
    """Claims and finishes of each kind: delivered (two statuses), retried, failed past
    expiry, lost to another owner, an email, a deleted subscription's, a disabled one's."""
    outbox = OutboxStore(store, clock=clock, max_age=100)
    seen: list[Any] = []
    await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
    await outbox.add_webhook("wh_b", "http://127.0.0.1:1/b", ["emergency_call"], "t", "b")
    await outbox.add_events(
        [_event(f"evt_{i}", at=clock.now + i) for i in range(6)], email=(EMAIL_TARGET,)
    )
    # A batch built from the devices' addresses (one known, one not), with an event twice
    # and one already written; then more events than one sqlite3 statement takes.
    await store.claim(binding("dev-1", "LOC9"), credential="device")

    def build(lookup: AddressLookup) -> list[NewEvent]:
        seen.append(lookup(["dev-1", "dev-2", "dev-1"]))
        return [_event("evt_5"), _event("evt_n"), _event("evt_n")]

    kind = HistoryKind.EMERGENCY_QUERY
    records = [
        HistoryRecord("dev-1", kind, "q", "cache", None, {"locationId": "LOC9"}, None),
        HistoryRecord("~unknown", kind, "q", "not_found", None, {"status": 404}, None),
    ]
    seen.append(await outbox.write_events(build, email=(EMAIL_TARGET,), records=records))
    seen.append(await outbox.write_events(lambda _: [], email=()))
    seen.append(await outbox.addresses(["dev-1"]))
    many = [_event(f"evt_m{i:03}", "device_stale") for i in range(450)]
    seen.append(await outbox.add_events(many))
    await outbox.update_webhook("wh_b", enabled=False)
    first = await outbox.claim("r1", lease=30, limit=7)
    seen.append(first)
    outcomes = [
        Outcome(first[0].delivery, 200),
        Outcome(first[1].delivery, 204),
        Outcome(first[2].delivery, 200),
        Outcome(first[3].delivery, 503, "HTTP 503", retry_in=40),
        Outcome(first[4].delivery, None, "x" * 900, retry_in=500),
    ]
    seen.append(await outbox.finish("r1", outcomes))
    clock.now += 31  # r1's lease ended: r2 takes its last two over, with the others due
    second = await outbox.claim("r2", lease=30, limit=50)
    seen.append(second)
    late = [Outcome(first[5].delivery, None, "ConnectError", retry_in=10)]
    seen.append(await outbox.finish("r1", late))
    await outbox.delete_webhook("wh_a")
    clock.now += 50
    third = await outbox.claim("r3", lease=30, limit=50)
    seen.append(third)
    seen.append(await outbox.finish("r3", [Outcome(c.delivery, 200) for c in third]))
    seen.append(await outbox.finish("r3", []))
    async with store.transaction(read_only=True) as connection:
        rows = await connection.execute(sa.select(deliveries).order_by(deliveries.c.id))
        seen.append([tuple(row) for row in rows])
        rows = await connection.execute(sa.select(events).order_by(events.c.id))
        seen.append([tuple(row) for row in rows])
        # The records written with the events (their time stamps are the store's clock's).
        kept = [c for c in history.c if c.name not in ("id", "at")]
        rows = await connection.execute(
            sa.select(*kept).where(history.c.kind == "emergency_query").order_by(history.c.id)
        )
        seen.append([tuple(row) for row in rows])
    return seen


def test_the_sqlite3_units_agree_with_the_portable_ones(tmp_path: Path) -> None:
    async def outcome(driver_sql: bool) -> list[Any]:
        url = f"sqlite+aiosqlite:///{tmp_path / f'outbox-{driver_sql}.db'}"
        async with await open_store(url, create=True, driver_sql=driver_sql) as store:
            assert isinstance(store, SqlStateStore) and store.uses_sqlite3 is driver_sql
            return await _claims_and_finishes(store, Now())

    fast, portable = run(outcome(True)), run(outcome(False))
    assert fast == portable
    found, written, nothing, address, stale, first, states, second, lost, third, *_ = fast
    *_, table, stored, recorded = fast
    # The events' unit: the lookup's answer, an id written once, email only where due.
    assert found == {"dev-1": ("LOC9", address["dev-1"][1])} and address["dev-1"][0] == "LOC9"
    assert written.ids == ["evt_n"] and written.deliveries == 3  # wh_a, wh_b, the email
    assert nothing.ids == [] and len(stale) == 450
    assert len(stored) == 6 + 1 + 450
    # The scenario reached what it means to: each state, a lost lease, both subscriptions.
    assert len(first) == 7 and {c.webhook.id for c in first if c.webhook} == {"wh_a", "wh_b"}
    assert any(c.webhook is not None and not c.webhook.enabled for c in first)
    assert states == ["delivered", "delivered", "delivered", "pending", "failed"]
    assert lost == ["lost"]
    assert {c.delivery.id for c in second} >= {first[5].delivery.id, first[6].delivery.id}
    assert all(c.webhook is None for c in third if c.delivery.target == "wh_a")
    assert len(table) == 18 + 3 and max(len(row[10] or "") for row in table) == 500
    # The history records, in the events' transaction.
    assert [(row[0], row[6]) for row in recorded] == [("dev-1", "LOC9"), ("~unknown", None)]


def test_a_claim_by_lane_takes_only_its_lanes_deliveries(tmp_path: Path) -> None:
    """The worker's lanes (each email target, the webhooks) claim apart (``sqlite3`` and
    portable alike)."""

    async def outcome(driver_sql: bool) -> list[list[str]]:
        url = f"sqlite+aiosqlite:///{tmp_path / f'lanes-{driver_sql}.db'}"
        async with await open_store(url, create=True, driver_sql=driver_sql) as store:
            assert isinstance(store, SqlStateStore)
            outbox = OutboxStore(store, clock=Now())
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_events(
                [_event(f"evt_{i}") for i in range(3)], email=(EMAIL_TARGET, "email:carrier")
            )
            lanes = [
                await outbox.claim("r", lease=30, limit=50, lane=lane)
                for lane in ("email:carrier", "webhook", "email", None)
            ]
            return [sorted(c.delivery.target for c in found) for found in lanes]

    fast, portable = run(outcome(True)), run(outcome(False))
    assert fast == portable == [["email:carrier"] * 3, ["wh_a"] * 3, ["email"] * 3, []]


def test_a_page_of_one_event_type_is_read_through_its_index(tmp_path: Path) -> None:
    """``GET /v1/events?type=emergency_call`` (the first step of the notifications alert's
    runbook) scanned every event backwards for the type's newest: a few calls among millions
    of ``location_conflict`` events read them all. It now reads the type's index."""

    async def main() -> list[str]:
        url = f"sqlite+aiosqlite:///{tmp_path / 'types.db'}"
        async with await open_store(url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            outbox = OutboxStore(store, clock=Now())
            await outbox.add_events(
                [_event(f"evt_{i:03}", "location_conflict", at=i) for i in range(300)]
                + [_event("evt_call", at=150.5)]
            )
            page = await outbox.page(limit=2, type="emergency_call")
            assert [e.id for e, _ in page] == ["evt_call"]
            before = (page[0][0].created_at, "evt_call")
            assert await outbox.page(limit=2, before=before, type="emergency_call") == []
            plans = []
            for query in (
                page_query(limit=2, type="emergency_call"),
                page_query(limit=2, before=before, type="emergency_call"),
            ):
                sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
                async with store.transaction(read_only=True) as connection:
                    rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                    plans.append(" ".join(str(row[-1]) for row in rows))
            return plans

    for plan in run(main()):
        assert "ix_events_type_created_at" in plan and "TEMP B-TREE" not in plan, plan


def test_a_claim_leaves_the_excluded_subscriptions_and_a_release_by_id_gives_back_only_those(
    tmp_path: Path,
) -> None:
    """The webhook lane's bound per subscription: a claim takes none of a subscription at its
    bound, and what a claim took beyond it is given back by id, due again at once (``sqlite3``
    and portable alike)."""

    async def outcome(driver_sql: bool) -> list[list[str]]:
        url = f"sqlite+aiosqlite:///{tmp_path / f'exclude-{driver_sql}.db'}"
        async with await open_store(url, create=True, driver_sql=driver_sql) as store:
            assert isinstance(store, SqlStateStore)
            outbox = OutboxStore(store, clock=Now())
            for hook in ("wh_a", "wh_b", "wh_c"):
                await outbox.add_webhook(hook, "http://127.0.0.1:1/", ["emergency_call"], "s", None)
            await outbox.add_events([_event(f"evt_{i}") for i in range(2)], email=(EMAIL_TARGET,))
            hooks = await outbox.claim("r", lease=30, limit=50, lane="webhook", exclude=["wh_a"])
            emails = await outbox.claim("r", lease=30, limit=50, lane="email", exclude=["wh_b"])
            given = [c.delivery.id for c in hooks if c.delivery.target == "wh_c"]
            assert await outbox.release("r", given) == 2
            again = await outbox.claim("r", lease=30, limit=50, exclude=["wh_a", "wh_b"])
            rest = await outbox.claim("r", lease=30, limit=50)
            found = (hooks, emails, again, rest)
            return [sorted(c.delivery.target for c in claimed) for claimed in found]

    fast, portable = run(outcome(True)), run(outcome(False))
    expected = [["wh_b", "wh_b", "wh_c", "wh_c"], ["email"] * 2, ["wh_c"] * 2, ["wh_a"] * 2]
    assert fast == portable == expected
