"""History by kind and events by type: the console's 911 calls page and ``GET /v1/events?type=``
read one kind's (type's) newest rows by an index.

Additive (two indexes), so the previous release still runs on this schema and the floor stays
where it is: it neither needs nor notices the index.
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0012", "0011"


def upgrade() -> None:
    ddl.create_index("history", "kind", "id")
    ddl.create_index("events", "type", "created_at", "id")


def downgrade() -> None:
    op.drop_index("ix_events_type_created_at_id", table_name="events")
    op.drop_index("ix_history_kind_id", table_name="history")
