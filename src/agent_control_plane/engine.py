"""Engines for the three supported databases: URL checks, drivers, SQLite pragmas."""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from agent_control_plane import boundary
from agent_control_plane.errors import ConfigurationError, UnsupportedDatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_MARK = "acp_governed"
# InnoDB's default REPEATABLE READ takes gap locks on range scans, which deadlock
# concurrent sweeps against inserts; READ COMMITTED is what ACP's statements assume
# on every database (each statement sees the latest committed rows).
_MYSQL_ISOLATION = "READ COMMITTED"
# Set on engines ACP creates for MySQL/MariaDB: every connection is READ COMMITTED from
# the moment it connects. A host's engine gets it per checkout instead, which costs a
# SET and a COMMIT at every checkout and again when the connection is returned.
_READ_COMMITTED_FROM_CONNECT = "acp_read_committed"

# backend -> (sync driver, async driver) chosen when the URL names none.
_DRIVERS = {
    "sqlite": ("pysqlite", "aiosqlite"),
    "postgresql": ("psycopg", "psycopg"),
    "mysql": ("pymysql", "asyncmy"),
    "mariadb": ("pymysql", "asyncmy"),
}
_SYNC_TO_ASYNC = {"pysqlite": "aiosqlite", "pymysql": "asyncmy", "psycopg2": "psycopg"}
# Drivers that only work with asyncio, and drivers that work with it at all.
_ASYNC_ONLY = frozenset({"aiosqlite", "asyncmy", "aiomysql", "asyncpg", "psycopg_async"})
_ASYNC_CAPABLE = _ASYNC_ONLY | {"psycopg"}


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
    shown = parsed.render_as_string(hide_password=True)
    if not asyncio and driver in _ASYNC_ONLY:
        raise ConfigurationError(
            f"{driver!r} is an asyncio driver ({shown}): open it with AsyncControlPlane.open(), "
            f"or give ControlPlane.open() a URL without it, e.g. {backend}://…"
        )
    if asyncio and driver not in _ASYNC_CAPABLE:
        raise ConfigurationError(
            f"{driver!r} cannot be used with asyncio ({shown}): open it with "
            f"ControlPlane.open(), or give AsyncControlPlane.open() {backend}+{async_driver}://…"
        )
    return parsed.set(drivername=f"{backend}+{driver}")


def sync_url_text(url: str) -> str:
    """``url`` as the CLI takes it: an asyncio driver (aiosqlite, asyncmy, …) swapped for
    the synchronous one ACP ships with, so that a command printed for a user runs as
    printed. Anything else is returned as it is."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS or "+" not in parsed.drivername:
        return url
    if parsed.get_driver_name() not in _ASYNC_ONLY | {"psycopg_async"}:
        return url
    sync = parsed.set(drivername=f"{backend}+{_DRIVERS[backend][0]}")
    return sync.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How many connections an engine ACP creates may hold, and how long a call waits.

    None keeps SQLAlchemy's pool defaults (5 connections plus 10 overflow, 30 s wait) and
    each database's lock wait (SQLite 30 s; PostgreSQL none; MariaDB 50 s).
    """

    size: int | None = None
    max_overflow: int | None = None
    timeout: float | None = None
    lock_timeout: float | None = None

    def engine_arguments(self, url: URL) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if self.size is not None:
            arguments["pool_size"] = self.size
        if self.max_overflow is not None:
            arguments["max_overflow"] = self.max_overflow
        if self.timeout is not None:
            arguments["pool_timeout"] = self.timeout
        return arguments

    @property
    def sqlite_busy_timeout_ms(self) -> int:
        if self.lock_timeout is None:
            return SQLITE_BUSY_TIMEOUT_MS
        return math.ceil(self.lock_timeout * 1000)


DEFAULT_POOL = PoolSettings()


def _is_file_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def _configure_sqlite_connection(dbapi_connection: Any, url: URL, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock other processes may hold.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
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


# A kill's SQLite connection polls for the write lock this often instead (seconds).
_URGENT_POLL = 0.0002
_BUSY_TIMEOUT_MS = "acp_busy_timeout_ms"


def _poll_for_the_lock(dbapi_connection: Any, connection_record: Any) -> None:
    """On a kill's SQLite connection: remember the busy timeout, and let BEGIN fail at
    once instead, so that :func:`_begin_immediate_urgently` does the waiting."""
    cursor = dbapi_connection.cursor()
    try:
        timeout = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
        cursor.execute("PRAGMA busy_timeout=0")
    finally:
        cursor.close()
    connection_record.info[_BUSY_TIMEOUT_MS] = timeout


def _begin_immediate_urgently(connection: Any) -> None:
    """BEGIN IMMEDIATE for a kill. SQLite's busy handler sleeps longer and longer between
    tries (up to 100 ms), so among many waiting writers it is a lottery, and a kill
    could wait seconds behind governed calls that came after it. A kill tries again
    every fraction of a millisecond instead, until the same timeout runs out."""
    driver = connection.connection.driver_connection
    timeout_ms = connection.connection.info.get(_BUSY_TIMEOUT_MS, SQLITE_BUSY_TIMEOUT_MS)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            driver.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(_URGENT_POLL)


def _govern(engine: Engine, *, urgent: bool = False) -> Engine:
    """A copy of ``engine`` sharing its pool, with ACP's transaction behaviour."""
    if engine.dialect.name in ("mysql", "mariadb") and not engine.get_execution_options().get(
        _READ_COMMITTED_FROM_CONNECT
    ):
        ours = engine.execution_options(**{_MARK: True}, isolation_level=_MYSQL_ISOLATION)
    else:
        ours = engine.execution_options(**{_MARK: True})
    boundary.watch_commits(ours)
    if engine.dialect.name == "sqlite":
        if urgent and not engine.dialect.is_async:
            event.listen(engine.pool, "connect", _poll_for_the_lock)
            event.listen(ours, "begin", _begin_immediate_urgently)
        else:
            event.listen(ours, "begin", _begin_immediate)
    return ours


def governed_engine(engine: Engine) -> Engine:
    """Return ``engine`` as ACP uses it: on SQLite every transaction begins IMMEDIATE,
    on MySQL/MariaDB transactions are READ COMMITTED, and everywhere the boundary
    knows when a failure came while committing.

    All of it is set on a copy sharing the pool (``execution_options``), so a host's own
    engine keeps its own transaction behaviour.
    """
    if engine.get_execution_options().get(_MARK):
        return engine
    return _govern(engine)


def governed_async_engine(engine: AsyncEngine) -> AsyncEngine:
    """The async twin of :func:`governed_engine`."""
    if engine.get_execution_options().get(_MARK):
        return engine
    return AsyncEngine(_govern(engine.sync_engine))


def _engine_arguments(url: URL, pool: PoolSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": pool.sqlite_busy_timeout_ms / 1000}
    if url.get_backend_name() in ("mysql", "mariadb"):
        kwargs["isolation_level"] = _MYSQL_ISOLATION
        kwargs["execution_options"] = {_READ_COMMITTED_FROM_CONNECT: True}
    return {**kwargs, **pool.engine_arguments(url)}


# A pooled connection idle at least this long is pinged before it is used (seconds).
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "acp_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for PING_AFTER_IDLE.

    ``pool_pre_ping`` pings at every checkout: one more round trip than a warm decision
    has statements, to catch connections the server dropped while they were in the pool.
    A connection used a moment ago is as alive as a ping would show; one that failed in
    use is invalidated where it failed (store/prepared.py, or SQLAlchemy itself)."""
    dialect = engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return  # just connected, or used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As pool_pre_ping does: every connection as old as this one is suspect.
                raise InvalidatePoolError(str(error)) from error
            raise

    event.listen(engine.pool, "checkin", checked_in)
    event.listen(engine.pool, "checkout", checked_out)


def _connect_or_refuse_the_options(
    dialect: Any, _record: Any, arguments: list[Any], options: dict[str, Any]
) -> Any:
    """Connect as SQLAlchemy would; a driver that refuses a keyword (an option of the URL's
    query meant for another driver, such as PyMySQL's ``ssl_disabled`` once the URL was
    given the asyncio driver) is a setting to correct, not a TypeError from inside it."""
    try:
        return dialect.connect(*arguments, **options)
    except TypeError as exc:
        raise ConfigurationError(
            f"the database driver {dialect.driver!r} does not take an option of the URL's "
            f"query ({exc}): remove it, or give a URL for a driver that takes it"
        ) from exc


def _configure(engine: Engine, url: URL, pool: PoolSettings) -> None:
    event.listen(engine, "do_connect", _connect_or_refuse_the_options)
    if url.get_backend_name() != "sqlite":
        _ping_when_idle(engine)
    if url.get_backend_name() == "sqlite":
        busy_ms = pool.sqlite_busy_timeout_ms
        event.listen(
            engine,
            "connect",
            lambda dbapi, _record: _configure_sqlite_connection(dbapi, url, busy_ms),
        )
    elif pool.lock_timeout is not None:
        statement = _lock_timeout_statement(url, pool.lock_timeout)
        event.listen(
            engine, "connect", lambda dbapi, _record: _execute_and_commit(dbapi, statement)
        )


def _lock_timeout_statement(url: URL, seconds: float) -> str:
    if url.get_backend_name() == "postgresql":
        return f"SET lock_timeout = {math.ceil(seconds * 1000)}"
    # InnoDB counts whole seconds, at least one.
    return f"SET SESSION innodb_lock_wait_timeout = {max(1, math.ceil(seconds))}"


def _execute_and_commit(dbapi_connection: Any, statement: str) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()
    dbapi_connection.commit()  # a SET in a rolled-back transaction would be undone


def create_sync_engine(url: URL, pool: PoolSettings = DEFAULT_POOL) -> Engine:
    engine = create_engine(url, **_engine_arguments(url, pool))
    _configure(engine, url, pool)
    return engine


def create_async_engine_for(url: URL, pool: PoolSettings = DEFAULT_POOL) -> AsyncEngine:
    engine = create_async_engine(url, **_engine_arguments(url, pool))
    _configure(engine.sync_engine, url, pool)
    return engine


def pool_of_its_own(engine: Engine) -> Engine | None:
    """An engine on a new pool of ``engine``'s kind, connecting as it does (same creator,
    settings and pool events), with ACP's transaction behaviour; None where a second pool
    would not reach the same database (SQLite in memory) or could not be made.

    Kills run on it, so a kill never waits for a connection behind governed calls. Its
    connections open only when a kill needs one.
    """
    pool = engine.pool
    if not isinstance(pool, QueuePool | NullPool):
        return None
    options = engine.get_execution_options()
    kept = {name: True for name in (_READ_COMMITTED_FROM_CONNECT,) if options.get(name)}
    own = Engine(pool.recreate(), engine.dialect, engine.url, execution_options=kept)
    return _govern(own, urgent=True)


def threaded_sqlite_engine(engine: AsyncEngine, pool: PoolSettings = DEFAULT_POOL) -> Engine | None:
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
    return governed_engine(create_sync_engine(url.set(drivername="sqlite+pysqlite"), pool))
