"""History by kind: the console's 911 calls page reads a kind's newest rows by its index.

Additive (one index), so the previous release still runs on this schema and the floor stays
where it is: it neither needs nor notices the index.
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0012", "0011"


def upgrade() -> None:
    ddl.create_index("history", "kind", "id")


def downgrade() -> None:
    op.drop_index("ix_history_kind_id", table_name="history")
