"""Console sessions signed out, shared by every replica and kept across restarts.

Additive (one table), so the previous release still runs on this schema: it neither reads
nor writes the table, and so remembers a sign-out in its own process only, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0011", "0010"


def upgrade() -> None:
    ddl.create_table(
        "console_signouts",
        ddl.primary("sid", sa.String(64)),
        ddl.instant("expires_at"),
    )
    ddl.create_index("console_signouts", "expires_at")


def downgrade() -> None:
    op.drop_index("ix_console_signouts_expires_at", table_name="console_signouts")
    op.drop_table("console_signouts")
