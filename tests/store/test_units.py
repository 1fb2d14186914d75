"""Units of work written for a synchronous connection (``SqlStateStore.run_unit``).

On SQLite the whole unit runs on the driver's thread in one hand-over; on the portable path
and on PostgreSQL through ``run_sync``. Each must be one transaction, map the database's
errors to the store's, and the hot outbox operations must keep to one hand-over on SQLite.
"""

from __future__ import annotations

from typing import Any

import aiosqlite.core
import pytest
import sqlalchemy as sa

from gateway.store import open_store
from gateway.store.deliveries import Outcome
from gateway.store.errors import SchemaNotCurrent
from gateway.store.outbox import NewEvent, OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import webhooks
from tests.store.conftest import Database
from tests.store.helpers import run


def _hook(id: str) -> dict[str, Any]:
    return {
        "id": id,
        "url": "http://127.0.0.1:1/hook",
        "event_types": '["emergency_call"]',
        "secret": "s",
        "enabled": True,
        "created_at": 1,
        "updated_at": 1,
    }


class Boom(Exception):
    pass


@pytest.mark.parametrize("driver_sql", [True, False], ids=["driver", "portable"])
def test_a_unit_is_one_transaction_committed_or_rolled_back_whole(
    db: Database, driver_sql: bool
) -> None:
    def ids(connection: sa.Connection) -> list[str]:
        return list(connection.execute(sa.select(webhooks.c.id).order_by(webhooks.c.id)).scalars())

    def add_two_then_fail(connection: sa.Connection) -> None:
        connection.execute(webhooks.insert(), [_hook("wh_b"), _hook("wh_c")])
        raise Boom

    def add_one(connection: sa.Connection) -> int:
        connection.execute(webhooks.insert(), [_hook("wh_a")])
        return len(ids(connection))

    async def main() -> None:
        store = await open_store(db.url, create=True, driver_sql=driver_sql)
        assert isinstance(store, SqlStateStore)
        async with store:
            assert await store.run_unit(add_one) == 1
            with pytest.raises(Boom):
                await store.run_unit(add_two_then_fail)
            # Nothing of the failed unit stayed; the store goes on working after it.
            assert await store.run_unit(ids) == ["wh_a"]
            with pytest.raises(SchemaNotCurrent):
                await store.run_unit(lambda c: c.execute(sa.text("SELECT * FROM no_such_table")))
            assert await store.run_unit(ids) == ["wh_a"]

    run(main())


def test_the_outbox_hot_path_is_one_hand_over_each_on_sqlite(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing events, claiming their deliveries and recording the outcomes: each one call
    onto aiosqlite's thread (through SQLAlchemy's asyncio layer each was a dozen or more)."""
    calls: list[int] = []
    execute = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await execute(self, fn, *args, **kwargs)

    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        outbox = OutboxStore(store, clock=lambda: 1_750_000_000.0)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_events([NewEvent("evt_0", "emergency_call", "{}", 1_750_000_000.0)])
            await outbox.claim("r", lease=30)  # the kept connection is open from here on
            monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
            new = [NewEvent(f"evt_{i}", "emergency_call", "{}", 1_750_000_000.0) for i in (1, 2)]
            assert await outbox.add_events(new) == ["evt_1", "evt_2"]
            assert len(calls) == 1
            claimed = await outbox.claim("r", lease=30)
            assert len(claimed) == 2 and len(calls) == 2
            assert all(c.webhook is not None and c.webhook.id == "wh_a" for c in claimed)
            assert await outbox.finish("r", [Outcome(claimed[0].delivery, 204)]) == ["delivered"]
            assert len(calls) == 3

    run(main())


def test_a_claim_carries_each_delivery_s_subscription_as_it_is_now(db: Database) -> None:
    async def main() -> None:
        store = await open_store(db.url, create=True)
        assert isinstance(store, SqlStateStore)
        outbox = OutboxStore(store, clock=lambda: 1_750_000_000.0)
        async with store:
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["emergency_call"], "s", None)
            await outbox.add_webhook("wh_b", "http://127.0.0.1:1/b", ["emergency_call"], "s", None)
            await outbox.add_events(
                [NewEvent("evt_1", "emergency_call", "{}", 1_750_000_000.0, email=True)],
                email=("email",),
            )
            await outbox.update_webhook("wh_a", url="http://127.0.0.1:2/moved")
            assert await outbox.delete_webhook("wh_b")
            claimed = {c.delivery.target: c.webhook for c in await outbox.claim("r", lease=30)}
            moved = claimed["wh_a"]
            assert moved is not None and moved.url == "http://127.0.0.1:2/moved"
            assert claimed["email"] is None  # an email has no subscription
            assert "wh_b" not in claimed  # deleted: its delivery failed, nothing to claim

    run(main())
