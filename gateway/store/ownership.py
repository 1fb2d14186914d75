"""Callback-number ownership in the state store's transactions (``numbers`` and its history)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.dlr.binding import Binding
from gateway.store.base import NumberState
from gateway.store.mapping import (
    from_us,
    insert_for,
    number_change,
    number_state_of,
    number_taken,
    refuse_number,
)
from gateway.store.tables import history, numbers


async def hold_number(
    connection: AsyncConnection, binding: Binding, now: int, credential: str
) -> None:
    """Lock the number's row, or make the device its owner; ``NumberOwned``
    (the transaction rolls back) when another device owns it alone."""
    number = binding.telephone_number
    while True:
        row = (
            await connection.execute(
                sa.select(numbers.c.owner_aeui, numbers.c.shared)
                .where(numbers.c.telephone_number == number)
                .with_for_update()
            )
        ).first()
        if row is not None:
            refuse_number(binding, row.owner_aeui, bool(row.shared))
            return
        taken = await connection.execute(
            insert_for(connection, numbers)
            .values(telephone_number=number, owner_aeui=binding.aeui, shared=False, updated_at=now)
            .on_conflict_do_nothing(index_elements=[numbers.c.telephone_number])
            .returning(numbers.c.telephone_number)
        )
        if taken.first() is not None:
            await connection.execute(
                sa.insert(history).values(number_taken(binding, now, credential))
            )
            return
        # Another device took it a moment ago: lock its row and look again.


async def change_number(
    connection: AsyncConnection,
    telephone_number: str,
    *,
    owner: str | None,
    shared: bool,
    now: int,
    credential: str,
) -> tuple[NumberState | None, NumberState | None]:
    """An admin's change of who may use a number, recorded when it changes."""
    row = (
        await connection.execute(
            sa.select(numbers)
            .where(numbers.c.telephone_number == telephone_number)
            .with_for_update()
        )
    ).first()
    before = None if row is None else number_state_of(row)
    after = None
    if owner is None and not shared:
        await connection.execute(
            sa.delete(numbers).where(numbers.c.telephone_number == telephone_number)
        )
    else:
        after = NumberState(telephone_number, owner, shared, from_us(now))
        await connection.execute(
            insert_for(connection, numbers)
            .values(
                telephone_number=telephone_number,
                owner_aeui=owner,
                shared=shared,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=[numbers.c.telephone_number],
                set_={"owner_aeui": owner, "shared": shared, "updated_at": now},
            )
        )
    if (before and before.as_json()) != (after and after.as_json()):
        await connection.execute(
            sa.insert(history).values(
                number_change(telephone_number, before, after, now, credential)
            )
        )
    return before, after


async def release_owned(
    connection: AsyncConnection, aeui: str, now: int, credential: str
) -> list[str]:
    """Release every number ``aeui`` owns alone, each recorded in its history."""
    released = (
        await connection.execute(
            sa.delete(numbers)
            .where(numbers.c.owner_aeui == aeui, numbers.c.shared.is_(False))
            .returning(*numbers.c)
        )
    ).all()
    for row in released:
        before = number_state_of(row)
        await connection.execute(
            sa.insert(history).values(
                number_change(before.telephone_number, before, None, now, credential)
            )
        )
    return sorted(row.telephone_number for row in released)
