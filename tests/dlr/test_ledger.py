"""The in-memory ledger (a gateway run without a database): bounded, but never forgetful of
a write the carrier has not confirmed."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gateway.dlr.binding import Binding
from gateway.dlr.ledger import MemoryLedger
from gateway.store.base import DeviceDeleted

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _binding(aeui: str, location_id: str = "L1", at: datetime = T0) -> Binding:
    return Binding(
        aeui=aeui,
        carrier_endpoint_id=f"E{aeui}",
        location_id=location_id,
        address=None,
        caller_name="A",
        telephone_number=f"+1555{aeui}",
        observed_at=at,
    )


def test_confirmed_rows_are_evicted_least_recent_first() -> None:
    async def scenario() -> None:
        ledger = MemoryLedger(maxsize=2)
        for aeui in ("a", "b", "c"):
            claim = await ledger.claim(_binding(aeui), credential="t")
            assert await ledger.confirm(aeui, claim.current.version)
        assert await ledger.get("a") is None
        assert await ledger.get("c") is not None
        assert ledger.pinned == 0

    asyncio.run(scenario())


def test_an_unconfirmed_row_survives_any_amount_of_other_traffic() -> None:
    async def scenario() -> None:
        ledger = MemoryLedger(maxsize=2)
        newer = await ledger.claim(
            _binding("late", "L2", T0 + timedelta(seconds=5)), credential="t"
        )
        for n in range(10):
            claim = await ledger.claim(_binding(f"d{n}"), credential="t")
            await ledger.confirm(f"d{n}", claim.current.version)
        row = await ledger.get("late")
        assert row is not None and row.location_id == "L2" and not row.confirmed
        # An older report still cannot win the device back.
        refused = await ledger.claim(_binding("late", "L1", T0), credential="t")
        assert not refused.won
        # Once confirmed it is an ordinary, evictable row again.
        assert await ledger.confirm("late", newer.current.version)
        assert ledger.pinned == 0
        for n in range(10, 12):
            claim = await ledger.claim(_binding(f"d{n}"), credential="t")
            await ledger.confirm(f"d{n}", claim.current.version)
        assert await ledger.get("late") is None

    asyncio.run(scenario())


def test_advance_and_delete_see_pinned_rows() -> None:
    async def scenario() -> None:
        ledger = MemoryLedger(maxsize=1)
        claim = await ledger.claim(_binding("p"), credential="t")
        later = T0 + timedelta(seconds=1)
        assert await ledger.advance("p", later, version=claim.current.version)
        row = await ledger.get("p")
        assert row is not None and row.observed_at == later and not row.confirmed
        assert not await ledger.advance("p", T0)
        deleted = await ledger.delete("p")
        assert deleted is not None and deleted.aeui == "p"
        assert await ledger.get("p") is None and ledger.pinned == 0

    asyncio.run(scenario())


def test_order_apart_from_the_place_and_deleted_devices_as_the_store_keeps_them() -> None:
    """A refused move's restored binding orders by ``ordered_at``; an admin's deletion
    leaves a tombstone (tests/store/test_claims.py holds the store to the same)."""

    async def scenario() -> None:
        ledger = MemoryLedger()
        later = T0 + timedelta(seconds=30)
        await ledger.claim(_binding("m", "L2", later), credential="t")
        restored = dataclasses.replace(_binding("m"), ordered_at=later)
        back = await ledger.claim(restored, credential="t")
        assert back.won and back.current.observed_at == T0
        older = _binding("m", "L3", T0 + timedelta(seconds=20))
        assert not (await ledger.claim(older, credential="t")).won
        assert not await ledger.advance("m", T0 + timedelta(seconds=20))
        assert await ledger.advance("m", later)
        assert await ledger.delete("m", deleted_at=T0) is not None
        assert await ledger.get_or_deleted("m") == (None, later)
        with pytest.raises(DeviceDeleted) as raised:
            await ledger.claim(_binding("m", "L1", later - timedelta(seconds=1)), credential="t")
        assert raised.value.deleted_at == later  # the device's newest, after the deletion
        assert (await ledger.claim(_binding("m", "L1", later), credential="t")).won
        await ledger.claim(_binding("n"), credential="t")
        assert await ledger.delete("n") is not None  # a refused creation: no tombstone
        assert (
            await ledger.claim(_binding("n", at=T0 - timedelta(seconds=10)), credential="t")
        ).won

    asyncio.run(scenario())


def test_a_device_created_again_after_its_deletion_is_not_taken_for_a_deleted_one() -> None:
    """Created again after an admin's deletion and confirmed, then evicted: the ledger no
    longer says it is deleted (a repair would delete its endpoint at the carrier)."""

    async def scenario() -> None:
        ledger = MemoryLedger(maxsize=1)
        await ledger.claim(_binding("m"), credential="t")
        await ledger.delete("m", deleted_at=T0 + timedelta(seconds=1))
        again = await ledger.claim(_binding("m", at=T0 + timedelta(seconds=2)), credential="t")
        assert await ledger.confirm("m", again.current.version)
        other = await ledger.claim(_binding("x"), credential="t")
        assert await ledger.confirm("x", other.current.version)  # "m" is evicted
        assert await ledger.get_or_deleted("m") == (None, None)

    asyncio.run(scenario())
