"""The schema's compatibility floor: which releases may still run on it (rollbacks).

Revision ID: 0003
Revises: 0002

``dlr_schema`` holds one row: ``compatible_since``, the oldest migration head whose release
can run on this schema. A release whose head is older than the database's revision starts
anyway when its head is at or past that floor (see ``gateway.store.migrate``), so rolling a
deployment back needs no downgrade. Additive migrations leave the floor where it is; one
that breaks older releases raises it to its own revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

#: 0001 and 0002 are additive: every release with the state store runs on this schema.
COMPATIBLE_SINCE = "0001"


def upgrade() -> None:
    table = op.create_table(
        "dlr_schema",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("compatible_since", sa.String(32), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_dlr_schema_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_dlr_schema"),
    )
    op.bulk_insert(table, [{"id": 1, "compatible_since": COMPATIBLE_SINCE}])


def downgrade() -> None:
    op.drop_table("dlr_schema")
