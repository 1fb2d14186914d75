"""A device's order apart from its place's time.

Additive (a nullable column), so the previous release still runs on this schema: it orders
by ``observed_at`` alone, as before this revision.
Readers order by the later of ``observed_at`` and ``ordered_at``, so whatever it writes
leaves an order that is still right.
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(ddl.instant("ordered_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("ordered_at")
