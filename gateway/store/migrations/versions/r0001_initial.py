"""The state store: devices, locations, history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations.ddl import BIG_ID, create_index, create_table, optional, required

revision = "0001"
down_revision: str | None = None


def upgrade() -> None:
    create_table(
        "devices",
        "aeui",
        required("aeui", sa.String(64)),
        required("endpoint_id", sa.String(64)),
        required("location_id", sa.String(64)),
        optional("address", sa.Text()),
        required("caller_name", sa.Text()),
        required("telephone_number", sa.String(32)),
        required("observed_at", sa.BigInteger()),
        required("source", sa.String(32)),
        required("applied_at", sa.BigInteger()),
        required("confirmed", sa.Boolean()),
        optional("latitude", sa.Double()),
        optional("longitude", sa.Double()),
        required("version", sa.Integer()),
        optional("lease_owner", sa.String(128)),
        optional("lease_until", sa.BigInteger()),
        optional("checked_at", sa.BigInteger()),
    )
    create_index("devices", "checked_at")
    create_index("devices", "location_id")
    create_table(
        "locations",
        "location_id",
        required("location_id", sa.String(64)),
        required("address", sa.Text()),
        optional("status", sa.String(64)),
        optional("latitude", sa.Double()),
        optional("longitude", sa.Double()),
        required("created_at", sa.BigInteger()),
    )
    create_table(
        "history",
        "id",
        required("id", BIG_ID, autoincrement=True),
        required("aeui", sa.String(64)),
        required("at", sa.BigInteger()),
        required("credential", sa.String(128)),
        required("source", sa.String(32)),
        required("kind", sa.String(32)),
        optional("observed_at", sa.BigInteger()),
        optional("from_location_id", sa.String(64)),
        optional("to_location_id", sa.String(64)),
        optional("from_json", sa.Text()),
        optional("to_json", sa.Text()),
        sqlite_autoincrement=True,
    )
    create_index("history", "aeui", "id")
    create_index("history", "at")


def downgrade() -> None:
    op.drop_table("history")
    op.drop_table("locations")
    op.drop_index("ix_devices_location_id", table_name="devices")
    op.drop_index("ix_devices_checked_at", table_name="devices")
    op.drop_table("devices")
