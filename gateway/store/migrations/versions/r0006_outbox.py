"""The event outbox: webhook subscriptions, events, their deliveries, stale-device marks.

Additive: new tables only, which the previous release neither reads nor writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0006", "0005"


def upgrade() -> None:
    ddl.create_table(
        "webhooks",
        ddl.primary("id", sa.String(40)),
        ddl.required("url", sa.Text()),
        ddl.required("event_types", sa.Text()),
        ddl.optional("description", sa.Text()),
        ddl.required("secret", sa.String(128)),
        ddl.optional("previous_secret", sa.String(128)),
        ddl.instant("previous_until", nullable=True),
        ddl.required("enabled", sa.Boolean()),
        ddl.instant("created_at"),
        ddl.instant("updated_at"),
    )
    ddl.create_table(
        "events",
        ddl.primary("id", sa.String(64)),
        ddl.required("type", sa.String(32)),
        ddl.required("body", sa.Text()),
        ddl.instant("created_at"),
    )
    ddl.create_index("events", "created_at")
    ddl.create_table(
        "deliveries",
        ddl.primary("id", ddl.BIG_ID, autoincrement=True),
        ddl.required("event_id", sa.String(64)),
        ddl.required("target", sa.String(40)),
        ddl.required("state", sa.String(16)),
        ddl.required("attempts", sa.Integer()),
        ddl.instant("next_at"),
        ddl.instant("expires_at"),
        ddl.optional("lease_owner", sa.String(128)),
        ddl.instant("lease_until", nullable=True),
        ddl.optional("last_status", sa.Integer()),
        ddl.optional("last_error", sa.Text()),
        ddl.instant("delivered_at", nullable=True),
        sa.UniqueConstraint("event_id", "target", name="uq_deliveries_event_id_target"),
    )
    ddl.create_index("deliveries", "state", "next_at")
    ddl.create_device_table("stale_marks", ddl.instant("heard_at"))


def downgrade() -> None:
    op.drop_table("stale_marks")
    op.drop_index("ix_deliveries_state_next_at", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
    op.drop_table("webhooks")
