"""The state store: devices, locations, history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0001", None


def upgrade() -> None:
    ddl.create_device_table(
        "devices",
        ddl.required("endpoint_id", sa.String(64)),
        ddl.required("location_id", sa.String(64)),
        ddl.optional("address", sa.Text()),
        ddl.required("caller_name", sa.Text()),
        ddl.required("telephone_number", sa.String(32)),
        ddl.instant("observed_at"),
        ddl.required("source", sa.String(32)),
        ddl.instant("applied_at"),
        ddl.required("confirmed", sa.Boolean()),
        ddl.optional("latitude", sa.Double()),
        ddl.optional("longitude", sa.Double()),
        ddl.required("version", sa.Integer()),
        ddl.optional("lease_owner", sa.String(128)),
        ddl.instant("lease_until", nullable=True),
        ddl.instant("checked_at", nullable=True),
    )
    ddl.create_index("devices", "checked_at")
    ddl.create_index("devices", "location_id")
    ddl.create_table(
        "locations",
        ddl.primary("location_id", sa.String(64)),
        ddl.required("address", sa.Text()),
        ddl.optional("status", sa.String(64)),
        ddl.optional("latitude", sa.Double()),
        ddl.optional("longitude", sa.Double()),
        ddl.instant("created_at"),
    )
    ddl.create_table(
        "history",
        ddl.primary("id", ddl.BIG_ID, autoincrement=True),
        ddl.required("aeui", sa.String(64)),
        ddl.instant("at"),
        ddl.required("credential", sa.String(128)),
        ddl.required("source", sa.String(32)),
        ddl.required("kind", sa.String(32)),
        ddl.instant("observed_at", nullable=True),
        ddl.optional("from_location_id", sa.String(64)),
        ddl.optional("to_location_id", sa.String(64)),
        ddl.optional("from_json", sa.Text()),
        ddl.optional("to_json", sa.Text()),
        sqlite_autoincrement=True,
    )
    ddl.create_index("history", "aeui", "id")
    ddl.create_index("history", "at")


def downgrade() -> None:
    op.drop_table("history")
    op.drop_table("locations")
    op.drop_index("ix_devices_location_id", table_name="devices")
    op.drop_index("ix_devices_checked_at", table_name="devices")
    op.drop_table("devices")
