"""Database URLs: which backend, the embedded default, and the async driver for each."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url

DATABASE_FILE = "dlr-gateway.db"
MEMORY_URL = "sqlite+aiosqlite://"

_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def default_url(data_dir: str | Path) -> str:
    """The embedded default: a SQLite file in ``data_dir``."""
    path = Path(data_dir).expanduser().resolve() / DATABASE_FILE
    return URL.create("sqlite+aiosqlite", database=str(path)).render_as_string()


def parse(url: str) -> URL:
    """``url`` with its async driver: ``postgresql://`` means asyncpg, ``sqlite://`` aiosqlite."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError, ValueError
        raise ValueError(f"not a database URL: {exc}") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database {parsed.drivername!r}: use postgresql://… or sqlite://…"
        )
    return parsed.set(drivername=driver)


def is_sqlite(url: str | URL) -> bool:
    parsed = url if isinstance(url, URL) else parse(url)
    return parsed.get_backend_name() == "sqlite"


def is_embedded(url: str | URL) -> bool:
    """Embedded SQLite is migrated by ``serve``; PostgreSQL by ``dlr-gateway db upgrade``."""
    return is_sqlite(url)


def is_memory(url: str | URL) -> bool:
    parsed = url if isinstance(url, URL) else parse(url)
    return is_sqlite(parsed) and parsed.database in (None, "", ":memory:")


def redacted(url: str | URL) -> str:
    """The URL without its password, for logs and messages."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def ensure_directory(url: URL) -> None:
    """Create the directory of a SQLite file, so that its first migration can create it."""
    if is_sqlite(url) and not is_memory(url) and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
