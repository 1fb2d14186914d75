"""The wiremap: network elements (subnets, access points, switches, ports) -> locations.

Additive: two new tables the previous release neither reads nor writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0005", "0004"


def upgrade() -> None:
    ddl.create_table(
        "network_entries",
        ddl.primary("id", sa.String(32)),
        ddl.required("kind", sa.String(16)),
        ddl.required("key", sa.String(64)),
        ddl.optional("port_id", sa.String(64)),
        ddl.required("address", sa.Text()),
        ddl.optional("location_id", sa.String(64)),
        ddl.optional("description", sa.Text()),
        ddl.instant("updated_at"),
    )
    ddl.create_table(
        "network_version",
        ddl.primary("id", sa.Integer(), autoincrement=False),
        ddl.required("version", sa.BigInteger()),
        sa.CheckConstraint("id = 1", name="ck_network_version_one_row"),
    )
    op.execute("INSERT INTO network_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("network_version")
    op.drop_table("network_entries")
