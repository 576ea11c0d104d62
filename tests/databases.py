"""A fresh database per test on SQLite, PostgreSQL and MariaDB/MySQL.

URLs come from ACP_TEST_PG_URL and ACP_TEST_MYSQL_URL (local defaults below).
Each test gets its own database, named after this run, so runs never collide.
Under CI=true an unreachable server fails the test; locally it skips it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

PG_URL = os.environ.get("ACP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ACP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DIALECTS = ("sqlite", "postgresql", "mysql")

# PyMySQL builds a TLS context for every new connection by default (25 ms of CPU loading the
# system's CA certificates) and drops it when the server offers no TLS, as the test servers
# do not: the tests' connections skip the attempt. asyncmy tries no TLS unasked.
_PYMYSQL_ONLY = ("ssl_disabled",)
_NO_TLS_ATTEMPT = {"ssl_disabled": "true"}

_RUN = f"acpt_{os.getpid()}_{secrets.token_hex(3)}"
_counter = itertools.count()


@dataclass(frozen=True)
class TestDatabase:
    """One fresh, empty database."""

    __test__ = False
    dialect: str
    url: URL

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    @property
    def portable_url_string(self) -> str:
        """The URL without options only this driver knows: what another driver can take."""
        return self.url.difference_update_query(_PYMYSQL_ONLY).render_as_string(hide_password=False)

    @property
    def async_url(self) -> URL:
        driver = {"sqlite": "aiosqlite", "postgresql": "psycopg", "mysql": "asyncmy"}[self.dialect]
        url = self.url.difference_update_query(_PYMYSQL_ONLY)
        return url.set(drivername=f"{url.get_backend_name()}+{driver}")

    @property
    def async_url_string(self) -> str:
        return self.async_url.render_as_string(hide_password=False)


@cache
def _server_error(admin_url: str) -> str | None:
    try:
        engine = create_engine(admin_url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _require_server(admin_url: str) -> None:
    error = _server_error(admin_url)
    if error is None:
        return
    message = f"database server unreachable at {make_url(admin_url)!r}: {error}"
    if IN_CI:
        pytest.fail(f"{message} (under CI=true a database test must run, never skip)")
    pytest.skip(f"{message} (set CI=true to make this a failure)")


@cache
def _admin(admin_url: str) -> Engine:
    """One autocommit engine per server for the whole run: CREATE and DROP DATABASE."""
    return create_engine(admin_url, isolation_level="AUTOCOMMIT")


class _Dropper:
    """Drops finished tests' databases on a background thread: a DROP DATABASE costs a few
    hundred milliseconds that no test needs to wait for. The run waits for it at exit."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="drop-databases", daemon=True)
        self._thread.start()
        atexit.register(self._wait, 120.0)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def drop(self, admin_url: str, statement: str) -> None:
        self._queue.put((admin_url, statement))

    def _work(self) -> None:
        while True:
            admin_url, statement = self._queue.get()
            try:
                with _admin(admin_url).connect() as connection:
                    connection.execute(text(statement))
            except Exception as error:  # a leftover database is not worth failing a run for
                print(f"could not run {statement!r}: {error}", file=sys.stderr)
            finally:
                self._queue.task_done()


_dropper = cache(_Dropper)


def _migrate(url: URL) -> None:
    from agent_control_plane import ControlPlane

    with ControlPlane.open(url.render_as_string(hide_password=False)):
        pass


@cache
def _template(dialect: str) -> str:
    """This process's database migrated to head, made once, which fresh migrated
    databases are copied from: a file on SQLite, a database elsewhere."""
    if dialect == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix=f"{_RUN}_"))
        path = folder / "template.db"
        _migrate(make_url(f"sqlite:///{path}"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return str(path)
    admin_url = PG_URL if dialect == "postgresql" else MYSQL_URL
    name = f"{_RUN}_template"
    _create(dialect, admin_url, name)
    dropper = _dropper()  # made first, so that it waits for this drop at exit
    atexit.register(dropper.drop, admin_url, _drop_statement(dialect, name))
    _migrate(make_url(admin_url).set(database=name))
    return name


def _create(dialect: str, admin_url: str, name: str, template: str | None = None) -> None:
    with _admin(admin_url).connect() as connection:
        if dialect == "postgresql":
            copied = "" if template is None else f' TEMPLATE "{template}"'
            connection.execute(text(f'CREATE DATABASE "{name}"{copied}'))
            return
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        if template is not None:
            _copy_mysql(connection, template, name)


def _copy_mysql(connection: Connection, template: str, name: str) -> None:
    """MariaDB/MySQL have no template databases: each table is created as the template
    has it (keys and foreign keys included) and its rows copied."""
    tables = connection.execute(
        text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = :schema AND table_type = 'BASE TABLE'"
        ),
        {"schema": template},
    ).scalars()
    connection.execute(text(f"USE `{name}`"))
    connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
    try:
        for table in list(tables):
            ddl = connection.execute(text(f"SHOW CREATE TABLE `{template}`.`{table}`")).one()[1]
            connection.execute(text(ddl))
            connection.execute(text(f"INSERT INTO `{table}` SELECT * FROM `{template}`.`{table}`"))
    finally:
        connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))


class _Spares:
    """One database per dialect and kind made ahead, on a background thread, while the test
    before runs: creating one (copying the template on PostgreSQL, every table on MariaDB)
    costs tens to hundreds of milliseconds that the test would otherwise wait for."""

    def __init__(self) -> None:
        self._maker = ThreadPoolExecutor(1, thread_name_prefix="make-databases")
        self._ahead: dict[tuple[str, bool], Future[str]] = {}
        atexit.register(self._drop_unused)  # after the dropper's own wait: run before it

    def take(self, dialect: str, admin_url: str, migrated: bool) -> str:
        kind = (dialect, migrated)
        made = self._ahead.pop(kind, None)
        name = made.result() if made is not None else _made(dialect, admin_url, migrated)
        self._ahead[kind] = self._maker.submit(_made, dialect, admin_url, migrated)
        return name

    def _drop_unused(self) -> None:
        for (dialect, _), made in self._ahead.items():
            try:
                name = made.result(timeout=60)
            except Exception:
                continue
            admin_url = PG_URL if dialect == "postgresql" else MYSQL_URL
            _dropper().drop(admin_url, _drop_statement(dialect, name))
        self._maker.shutdown(wait=False)


def _made(dialect: str, admin_url: str, migrated: bool) -> str:
    name = f"{_RUN}_{next(_counter)}"
    _create(dialect, admin_url, name, _template(dialect) if migrated else None)
    return name


def _drop_statement(dialect: str, name: str) -> str:
    if dialect == "postgresql":
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


@cache
def _spares() -> _Spares:
    _dropper()  # made first, so that its wait at exit comes after the spares are dropped
    return _Spares()


def fresh_database(
    dialect: str, tmp_path: Path, *, migrated: bool = False
) -> Iterator[TestDatabase]:
    """Create a database for one test and drop it afterwards: empty, or with ACP's tables
    at head (``migrated``: copied from a template this process migrated once)."""
    if dialect == "sqlite":
        path = tmp_path / "test.db"
        if migrated:
            shutil.copyfile(_template("sqlite"), path)
        yield TestDatabase("sqlite", make_url(f"sqlite:///{path}"))
        return
    admin_url = PG_URL if dialect == "postgresql" else MYSQL_URL
    _require_server(admin_url)
    name = _spares().take(dialect, admin_url, migrated)
    url = make_url(admin_url).set(database=name)
    if url.get_driver_name() == "pymysql":
        url = url.update_query_dict(_NO_TLS_ATTEMPT)
    try:
        yield TestDatabase(dialect, url)
    finally:
        _dropper().drop(admin_url, _drop_statement(dialect, name))
