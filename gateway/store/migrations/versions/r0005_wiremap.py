"""The wiremap: network elements (subnets, access points, switches, ports) -> locations.

Revision ID: 0005
Revises: 0004

Additive: two new tables the previous release neither reads nor writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "network_entries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("port_id", sa.String(64), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_network_entries"),
    )
    op.create_table(
        "network_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_network_version_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_network_version"),
    )
    op.execute("INSERT INTO network_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("network_version")
    op.drop_table("network_entries")
