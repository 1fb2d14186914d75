"""A webhook's older secrets: every secret rotated out whose overlap has not ended keeps
signing, not only the last one (``webhooks.older_secrets``).

Additive (one nullable column), so the previous release still runs on this schema and the
floor stays where it is: it neither reads nor writes the column, and signs with its
``previous_secret`` only, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.migrations import ddl

revision, down_revision = "0013", "0012"


def upgrade() -> None:
    op.add_column("webhooks", ddl.optional("older_secrets", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("older_secrets")
