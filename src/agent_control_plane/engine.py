"""Engines for the three supported databases: URL checks, drivers, SQLite pragmas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_control_plane.errors import UnsupportedDatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_MARK = "acp_governed"
# InnoDB's default REPEATABLE READ takes gap locks on range scans, which deadlock
# concurrent sweeps against inserts; READ COMMITTED is what ACP's statements assume
# on every database (each statement sees the latest committed rows).
_MYSQL_ISOLATION = "READ COMMITTED"

# backend -> (sync driver, async driver) chosen when the URL names none.
_DRIVERS = {
    "sqlite": ("pysqlite", "aiosqlite"),
    "postgresql": ("psycopg", "psycopg"),
    "mysql": ("pymysql", "asyncmy"),
    "mariadb": ("pymysql", "asyncmy"),
}
_SYNC_TO_ASYNC = {"pysqlite": "aiosqlite", "pymysql": "asyncmy", "psycopg2": "psycopg"}


def database_url(url: str | URL, *, asyncio: bool = False) -> URL:
    """Parse ``url``, refuse unsupported databases, and pick the driver ACP ships with."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UnsupportedDatabaseError(
            f"cannot parse database URL {str(url)!r}: expected e.g. sqlite:///acp.db, "
            "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise UnsupportedDatabaseError(
            f"{backend!r} databases are not supported: use SQLite, PostgreSQL, or MySQL/MariaDB "
            f"(got {parsed.render_as_string(hide_password=True)})"
        )
    sync_driver, async_driver = _DRIVERS[backend]
    if "+" not in parsed.drivername:
        driver = async_driver if asyncio else sync_driver
    else:
        driver = parsed.get_driver_name()
        if asyncio:
            driver = _SYNC_TO_ASYNC.get(driver, driver)
    return parsed.set(drivername=f"{backend}+{driver}")


def _is_file_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def _configure_sqlite_connection(dbapi_connection: Any, url: URL) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock other processes may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if _is_file_sqlite(url):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _begin_immediate(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so concurrent writers queue on the
    # busy timeout instead of failing when a read lock would need upgrading. Sent
    # straight to the driver: this runs before every transaction.
    if connection.dialect.is_async:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


def governed_engine(engine: Engine) -> Engine:
    """Return ``engine`` as ACP uses it: on SQLite every transaction begins IMMEDIATE,
    on MySQL/MariaDB transactions are READ COMMITTED.

    Both are set on a copy sharing the pool (``execution_options``), so a host's own
    engine keeps its own transaction behaviour.
    """
    if engine.get_execution_options().get(_MARK):
        return engine
    if engine.dialect.name in ("mysql", "mariadb"):
        return engine.execution_options(**{_MARK: True}, isolation_level=_MYSQL_ISOLATION)
    if engine.dialect.name != "sqlite":
        return engine
    ours = engine.execution_options(**{_MARK: True})
    event.listen(ours, "begin", _begin_immediate)
    return ours


def create_sync_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": url.get_backend_name() != "sqlite"}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(
            engine, "connect", lambda dbapi, _record: _configure_sqlite_connection(dbapi, url)
        )
    return engine


def create_async_engine_for(url: URL) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_pre_ping": url.get_backend_name() != "sqlite"}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(
            engine.sync_engine,
            "connect",
            lambda dbapi, _record: _configure_sqlite_connection(dbapi, url),
        )
    return engine


def governed_async_engine(engine: AsyncEngine) -> AsyncEngine:
    """The async twin of :func:`governed_engine`."""
    if engine.get_execution_options().get(_MARK):
        return engine
    if engine.dialect.name in ("mysql", "mariadb"):
        return engine.execution_options(**{_MARK: True}, isolation_level=_MYSQL_ISOLATION)
    if engine.dialect.name != "sqlite":
        return engine
    ours = engine.execution_options(**{_MARK: True})
    event.listen(ours.sync_engine, "begin", _begin_immediate)
    return ours


def threaded_sqlite_engine(engine: AsyncEngine) -> Engine | None:
    """For an aiosqlite engine ACP created on a database file: a pysqlite engine on the same
    file, governed like ACP's sync engines, else None.

    aiosqlite hops to its own thread for every driver call, a dozen per decision. Running a
    whole operation on a pysqlite connection in a worker thread makes that one hop. Not for
    ``:memory:`` (another connection would see another database) and not for a host's
    engine (whose connections and pragmas are the host's).
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or not _is_file_sqlite(url):
        return None
    return governed_engine(create_sync_engine(url.set(drivername="sqlite+pysqlite")))
