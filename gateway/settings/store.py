"""The shared state store and what it keeps: group commits, reconciliation, history."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings.reader import setting

#: ``GATEWAY_DATABASE_URL=none``: no state store; order is kept in process memory only.
NO_DATABASE = "none"
#: The sandbox's store when none is configured: SQLite in memory.
SANDBOX_DATABASE_URL = "sqlite+aiosqlite://"


@dataclass(frozen=True)
class StoreSettings:
    """The state store, its group commits, reconciliation with the carrier and history."""

    database_url: str = setting(
        "GATEWAY_DATABASE_URL",
        "",
        "the shared state store: `postgresql://user:password@host:5432/db` for several replicas "
        "(secret: it holds a password; printed only without it), `sqlite:///path/file.db`, unset "
        "for the embedded SQLite file in `GATEWAY_DATA_DIR` (in sandbox mode: in memory), or "
        "`none` for no store (order kept per process only). See [Shared "
        "state](#shared-state-postgresql-or-sqlite)",
        shown="— (the SQLite file)",
        secret=True,
    )
    store_linger: float = setting(
        "GATEWAY_STORE_LINGER",
        0.001,
        "the most seconds a group commit waits for more unchanged reports before its statement, "
        "only under load (when the previous statement carried more than one) and only while more "
        "keep arriving (it goes after a few event-loop turns bring none): fewer, larger "
        "statements; 0: never (see docs/benchmarks.md)",
    )
    store_max_batch: int = setting(
        "GATEWAY_STORE_MAX_BATCH",
        500,
        "most unchanged reports one group-committed statement advances (1: a statement per "
        "report, for comparison)",
        gt=0,
    )
    data_dir: str = setting(
        "GATEWAY_DATA_DIR",
        "data",
        "directory of the embedded SQLite file `dlr-gateway.db` (relative to the working "
        "directory; created if missing); unused with PostgreSQL",
    )
    reconcile_interval: float = setting(
        "GATEWAY_RECONCILE_INTERVAL",
        3600.0,
        "seconds between two checks of one device's record at the carrier; `0` = no periodic "
        "checks (writes left uncertain by a restart are still repaired, and the history "
        "still purged)",
    )
    reconcile_batch: int = setting(
        "GATEWAY_RECONCILE_BATCH",
        5,
        "devices one replica checks per pass",
    )
    reconcile_tick: float = setting(
        "GATEWAY_RECONCILE_TICK",
        1.0,
        "seconds between two passes of one replica (so at most `BATCH / TICK` carrier reads per "
        "second per replica; with `BANDWIDTH_API=v2`, as many order status reads more while "
        "orders are open past a minute)",
        gt=0,
    )
    history_retention_days: int = setting(
        "GATEWAY_HISTORY_RETENTION_DAYS",
        730,
        "how long the per-device history, deleted devices' order, and events none of whose "
        "deliveries is pending, are kept (older ones are deleted hourly)",
    )
