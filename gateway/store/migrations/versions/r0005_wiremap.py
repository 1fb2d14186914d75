"""The wiremap: network elements (subnets, access points, switches, ports) -> locations.

Additive: two new tables the previous release neither reads nor writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations.ddl import create_table, optional, required

revision = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    create_table(
        "network_entries",
        "id",
        required("id", sa.String(32)),
        required("kind", sa.String(16)),
        required("key", sa.String(64)),
        optional("port_id", sa.String(64)),
        required("address", sa.Text()),
        optional("location_id", sa.String(64)),
        optional("description", sa.Text()),
        required("updated_at", sa.BigInteger()),
    )
    create_table(
        "network_version",
        "id",
        required("id", sa.Integer(), autoincrement=False),
        required("version", sa.BigInteger()),
        sa.CheckConstraint("id = 1", name="ck_network_version_one_row"),
    )
    op.execute("INSERT INTO network_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("network_version")
    op.drop_table("network_entries")
