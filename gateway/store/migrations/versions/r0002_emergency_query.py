"""The emergency-call location query: devices by callback number, and coordinates' source.

Additive only, so that the previous release runs on this schema (a rollback needs no
downgrade): one index, and three nullable columns the previous release neither reads nor
writes. ``coordinates_version`` makes that safe: the columns are trusted only while it equals
the row's ``version``, which every claim bumps, the previous release's included.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0002", "0001"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(ddl.optional("coordinates_source", sa.String(16)))
        batch.add_column(ddl.optional("coordinates_accuracy", sa.Double()))
        batch.add_column(ddl.optional("coordinates_version", sa.Integer()))
    ddl.create_index("devices", "telephone_number")


def downgrade() -> None:
    op.drop_index("ix_devices_telephone_number", table_name="devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("coordinates_version")
        batch.drop_column("coordinates_accuracy")
        batch.drop_column("coordinates_source")
