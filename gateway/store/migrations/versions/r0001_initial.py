"""The state store: devices, locations, history.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("aeui", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("caller_name", sa.Text(), nullable=False),
        sa.Column("telephone_number", sa.String(32), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("checked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("aeui", name="pk_devices"),
    )
    op.create_index("ix_devices_checked_at", "devices", ["checked_at"])
    op.create_index("ix_devices_location_id", "devices", ["location_id"])
    op.create_table(
        "locations",
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("location_id", name="pk_locations"),
    )
    op.create_table(
        "history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("aeui", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("credential", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=True),
        sa.Column("from_location_id", sa.String(64), nullable=True),
        sa.Column("to_location_id", sa.String(64), nullable=True),
        sa.Column("from_json", sa.Text(), nullable=True),
        sa.Column("to_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_history_aeui_id", "history", ["aeui", "id"])
    op.create_index("ix_history_at", "history", ["at"])


def downgrade() -> None:
    op.drop_table("history")
    op.drop_table("locations")
    op.drop_index("ix_devices_location_id", table_name="devices")
    op.drop_index("ix_devices_checked_at", table_name="devices")
    op.drop_table("devices")
