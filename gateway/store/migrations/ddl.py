"""The migrations' shorthands: primary-key, NOT NULL and nullable columns, instants, a table
with its primary key (a device's table keyed by ``aeui``), and an index, named by the
store's convention (``pk_<table>``, ``ix_<table>_<columns>``).

Each makes exactly what the revisions first wrote out in full: changing one changes history.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

#: A 64-bit ID on PostgreSQL; SQLite's INTEGER, the only type it autoincrements.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def required(name: str, type_: sa.types.TypeEngine[Any], **options: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False, **options)


def optional(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


def primary(name: str, type_: sa.types.TypeEngine[Any], **options: Any) -> sa.Column[Any]:
    """A NOT NULL column of the table's primary key (``create_table`` names the key)."""
    return required(name, type_, info={"primary": True}, **options)


def instant(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """An instant: a ``BIGINT`` of microseconds since the Unix epoch, UTC."""
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def create_table(name: str, *items: sa.schema.SchemaItem, **options: Any) -> sa.Table:
    """``op.create_table`` with ``items``, then the primary key ``pk_<name>`` on the
    ``primary`` columns among them."""
    keys = [c.name for c in items if isinstance(c, sa.Column) and c.info.get("primary")]
    primary_key = sa.PrimaryKeyConstraint(*keys, name=f"pk_{name}")
    return op.create_table(name, *items, primary_key, **options)


def create_device_table(name: str, *items: sa.schema.SchemaItem) -> sa.Table:
    """``create_table`` of a row per device: keyed by its ``aeui``, with ``items``."""
    return create_table(name, primary("aeui", sa.String(64)), *items)


def create_index(table: str, *columns: str) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns))
