"""Devices by carrier endpoint ID: an admin's endpoint delete finds the device it binds.

Additive (one index), so the previous release still runs on this schema and the floor stays
where it is: it neither needs nor notices the index.
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0009", "0008"


def upgrade() -> None:
    ddl.create_index("devices", "endpoint_id")


def downgrade() -> None:
    op.drop_index("ix_devices_endpoint_id", table_name="devices")
