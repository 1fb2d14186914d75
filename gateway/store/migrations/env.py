"""Alembic's environment: run by ``gateway.store.migrate`` only, on a connection it passes in.

There is no ``alembic.ini``: the configuration is built in code, and the connection (sync
facade over the async engine, via ``run_sync``) arrives in ``config.attributes``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from gateway.store.tables import metadata

#: Serializes concurrent upgrades (several replicas starting at once) on PostgreSQL.
ADVISORY_LOCK_KEY = 0x646C_7267_7731  # "dlrgw1"


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, sa.Connection):
        raise RuntimeError("run migrations with gateway.store.upgrade(), not the alembic command")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        context.run_migrations()


run_migrations()
