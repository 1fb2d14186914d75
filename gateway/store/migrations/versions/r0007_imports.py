"""Bulk imports' progress: an import's file digest and state, and the lines it applied.

Revision ID: 0007
Revises: 0004

Additive (two new tables): the previous release runs on this schema unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", name="pk_imports"),
    )
    op.create_table(
        "import_rows",
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", "line", name="pk_import_rows"),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_table("imports")
