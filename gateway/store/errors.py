"""What the state store raises when it cannot serve, as opposed to what it answers."""

from __future__ import annotations

UPGRADE_COMMAND = "dlr-gateway db upgrade"


class StoreUnavailable(Exception):
    """The database cannot be reached, or did not answer in time; retrying later may work.

    The API answers this with 503 and ``Retry-After``.
    """


class SchemaNotCurrent(Exception):
    """The database schema is not at this release's migration head."""

    def __init__(self, current: str | None, head: str | None) -> None:
        have = current or "no schema"
        super().__init__(
            f"the database schema is not current (database: {have}, this release: {head}); "
            f"run `{UPGRADE_COMMAND}` against this database, then start again"
        )
        self.current = current
        self.head = head
