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


class SchemaTooNew(SchemaNotCurrent):
    """The database was migrated by a newer release that this one cannot run beside."""

    def __init__(self, current: str | None, head: str | None, floor: str | None) -> None:
        Exception.__init__(
            self,
            f"the database schema is newer than this release can use (database: {current}, "
            f"usable by releases from migration {floor or 'unknown'} on; this release: "
            f"{head}); run a newer release of the gateway",
        )
        self.current = current
        self.head = head
        self.floor = floor
