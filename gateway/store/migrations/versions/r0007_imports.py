"""Bulk imports' progress: an import's file digest and state, and the lines it applied.

Additive (two new tables): the previous release runs on this schema unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations.ddl import create_table, optional, required

revision = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    create_table(
        "imports",
        "import_id",
        required("import_id", sa.String(32)),
        required("kind", sa.String(16)),
        required("digest", sa.String(64)),
        required("total", sa.Integer()),
        required("state", sa.String(16)),
        required("created_at", sa.BigInteger()),
        required("updated_at", sa.BigInteger()),
        optional("report", sa.Text()),
    )
    create_table(
        "import_rows",
        ("import_id", "line"),
        required("import_id", sa.String(32)),
        required("line", sa.Integer(), autoincrement=False),
        required("outcome", sa.String(16)),
        optional("detail", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_table("imports")
