"""Devices' revoked tokens: the instant before which a device's tokens are refused.

Additive (one table), so the previous release still runs on this schema and the floor stays
where it is: it neither reads nor writes the table, and so refuses no revoked token (a
rollback forgets revocations until the release that made them runs again).
"""

from __future__ import annotations

from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0010", "0009"


def upgrade() -> None:
    ddl.create_device_table("token_revocations", ddl.instant("revoked_before"))


def downgrade() -> None:
    op.drop_table("token_revocations")
