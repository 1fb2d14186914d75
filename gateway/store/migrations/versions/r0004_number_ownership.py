"""Callback-number ownership, and when the gateway last heard from each device.

Additive, so the previous release still runs on this schema (the floor stays where it is):
a table and two nullable columns it neither reads nor writes. While it runs it does not
enforce ownership (as before this revision); its writes cannot grant a device a number,
because ``attested_number`` counts only while it equals the row's number, and readers take
the later of ``heard_at`` and ``applied_at``.

Existing numbers are given owners as they stand: a number one device holds is that
device's; a number several devices hold is marked shared (what the query answered before),
for an admin to review.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0004", "0003"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(ddl.instant("heard_at", nullable=True))
        batch.add_column(ddl.optional("attested_number", sa.String(32)))
    op.execute("UPDATE devices SET heard_at = applied_at")
    ddl.create_table(
        "numbers",
        ddl.primary("telephone_number", sa.String(32)),
        ddl.optional("owner_aeui", sa.String(64)),
        ddl.required("shared", sa.Boolean()),
        ddl.instant("updated_at"),
    )
    ddl.create_index("numbers", "owner_aeui")
    now = time.time_ns() // 1000
    op.execute(
        sa.text(
            "INSERT INTO numbers (telephone_number, owner_aeui, shared, updated_at) "
            "SELECT telephone_number, CASE WHEN COUNT(*) = 1 THEN MIN(aeui) END, "
            "COUNT(*) > 1, :now FROM devices GROUP BY telephone_number"
        ).bindparams(now=now)
    )


def downgrade() -> None:
    op.drop_index("ix_numbers_owner_aeui", table_name="numbers")
    op.drop_table("numbers")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("attested_number")
        batch.drop_column("heard_at")
