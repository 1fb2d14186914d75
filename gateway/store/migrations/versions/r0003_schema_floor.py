"""The schema's compatibility floor: which releases may still run on it (rollbacks).

``dlr_schema`` holds one row: ``compatible_since``, the oldest migration head whose release
can run on this schema. A release whose head is older than the database's revision starts
anyway when its head is at or past that floor (see ``gateway.store.migrate``), so rolling a
deployment back needs no downgrade. Additive migrations leave the floor where it is; one
that breaks older releases raises it to its own revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0003", "0002"

#: 0001 and 0002 are additive: every release with the state store runs on this schema.
COMPATIBLE_SINCE = "0001"


def upgrade() -> None:
    table = ddl.create_table(
        "dlr_schema",
        ddl.primary("id", sa.Integer()),
        ddl.required("compatible_since", sa.String(32)),
        sa.CheckConstraint("id = 1", name="ck_dlr_schema_one_row"),
    )
    op.bulk_insert(table, [{"id": 1, "compatible_since": COMPATIBLE_SINCE}])


def downgrade() -> None:
    op.drop_table("dlr_schema")
