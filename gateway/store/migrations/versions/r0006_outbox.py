"""The event outbox: webhook subscriptions, events, their deliveries, stale-device marks.

Additive: new tables only, which the previous release neither reads nor writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations.ddl import BIG_ID, create_index, create_table, optional, required

revision = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    create_table(
        "webhooks",
        "id",
        required("id", sa.String(40)),
        required("url", sa.Text()),
        required("event_types", sa.Text()),
        optional("description", sa.Text()),
        required("secret", sa.String(128)),
        optional("previous_secret", sa.String(128)),
        optional("previous_until", sa.BigInteger()),
        required("enabled", sa.Boolean()),
        required("created_at", sa.BigInteger()),
        required("updated_at", sa.BigInteger()),
    )
    create_table(
        "events",
        "id",
        required("id", sa.String(64)),
        required("type", sa.String(32)),
        required("body", sa.Text()),
        required("created_at", sa.BigInteger()),
    )
    create_index("events", "created_at")
    create_table(
        "deliveries",
        "id",
        required("id", BIG_ID, autoincrement=True),
        required("event_id", sa.String(64)),
        required("target", sa.String(40)),
        required("state", sa.String(16)),
        required("attempts", sa.Integer()),
        required("next_at", sa.BigInteger()),
        required("expires_at", sa.BigInteger()),
        optional("lease_owner", sa.String(128)),
        optional("lease_until", sa.BigInteger()),
        optional("last_status", sa.Integer()),
        optional("last_error", sa.Text()),
        optional("delivered_at", sa.BigInteger()),
        sa.UniqueConstraint("event_id", "target", name="uq_deliveries_event_id_target"),
    )
    create_index("deliveries", "state", "next_at")
    create_table(
        "stale_marks",
        "aeui",
        required("aeui", sa.String(64)),
        required("heard_at", sa.BigInteger()),
    )


def downgrade() -> None:
    op.drop_table("stale_marks")
    op.drop_index("ix_deliveries_state_next_at", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
    op.drop_table("webhooks")
