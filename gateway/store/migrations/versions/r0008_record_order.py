"""A device's order apart from its place's time, and deleted devices' tombstones.

Additive (a nullable column and a table), so the previous release still runs on this
schema: it orders by ``observed_at`` alone and keeps no tombstones, as before this revision.
Readers order by the later of ``observed_at`` and ``ordered_at``, so whatever it writes
leaves an order that is still right.
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0008", "0007"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(ddl.instant("ordered_at", nullable=True))
    ddl.create_device_table("deleted_devices", ddl.instant("deleted_at"))
    ddl.create_index("deleted_devices", "deleted_at")


def downgrade() -> None:
    op.drop_index("ix_deleted_devices_deleted_at", table_name="deleted_devices")
    op.drop_table("deleted_devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("ordered_at")
