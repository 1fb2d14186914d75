"""Bulk imports' progress: an import's file digest and state, and the lines it applied.

Additive (two new tables): the previous release runs on this schema unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0007", "0006"


def upgrade() -> None:
    ddl.create_table(
        "imports",
        ddl.primary("import_id", sa.String(32)),
        ddl.required("kind", sa.String(16)),
        ddl.required("digest", sa.String(64)),
        ddl.required("total", sa.Integer()),
        ddl.required("state", sa.String(16)),
        ddl.instant("created_at"),
        ddl.instant("updated_at"),
        ddl.optional("report", sa.Text()),
    )
    ddl.create_table(
        "import_rows",
        ddl.primary("import_id", sa.String(32)),
        ddl.primary("line", sa.Integer(), autoincrement=False),
        ddl.required("outcome", sa.String(16)),
        ddl.optional("detail", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_table("imports")
