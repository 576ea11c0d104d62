"""Opening ACP: settings, errors before anything is created, engines, SQLite behaviour."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_control_plane import (
    AsyncControlPlane,
    ConfigurationError,
    ControlPlane,
    UnsupportedDatabaseError,
)
from agent_control_plane.engine import database_url
from tests.acp_helpers import ALL_UPGRADES, HEAD
from tests.databases import TestDatabase


def test_open_creates_every_table_and_closes(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as control_plane:
        assert control_plane.applied_migrations == ALL_UPGRADES
        layout = control_plane.layout
        with control_plane.engine.connect() as connection:
            names = set(inspect(connection).get_table_names(schema=layout.schema))
        assert {t.name for t in control_plane.tables.all()} | {layout.version_table} == names
    with ControlPlane.open(database.url_string) as again:
        assert again.applied_migrations == ()


async def test_async_open_on_every_dialect(database: TestDatabase) -> None:
    async with await AsyncControlPlane.open(database.async_url_string) as control_plane:
        assert control_plane.applied_migrations == ALL_UPGRADES
        assert await control_plane.schema_revision() == (HEAD,)
    # A sync URL is given the async driver ACP ships with.
    async with await AsyncControlPlane.open(
        database.portable_url_string, migrate="verify"
    ) as again:
        assert await again.schema_revision() == (HEAD,)


def test_a_host_engine_is_used_and_left_open(database: TestDatabase) -> None:
    engine = create_engine(database.url)
    with ControlPlane.open(engine) as control_plane:
        assert control_plane.schema_revision() == (HEAD,)
    with engine.connect() as connection:  # ACP did not dispose the host's engine
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


async def test_a_host_async_engine_is_used(database: TestDatabase) -> None:
    engine = create_async_engine(database.async_url_string)
    async with await AsyncControlPlane.open(engine) as control_plane:
        assert await control_plane.schema_revision() == (HEAD,)
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    await engine.dispose()


def test_url_defaults_to_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("ACP_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("ACP_TABLE_PREFIX", "env_")
    with ControlPlane.open() as control_plane:
        assert control_plane.layout.table_prefix == "env_"
    assert path.exists()


def test_url_defaults_to_acp_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ControlPlane.open().close()
    assert (tmp_path / "acp.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://scott@localhost/orcl", "'oracle' databases are not supported"),
        ("mssql+pyodbc://u@dsn", "'mssql' databases are not supported"),
        ("not a url", "cannot parse database URL"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsupportedDatabaseError, match=message):
        ControlPlane.open(url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": "acp"}, "only supported on PostgreSQL"),
        ({"table_prefix": "Bad-Prefix"}, "invalid table prefix"),
        ({"table_prefix": ""}, "must not be empty"),
        ({"migrate": "sometimes"}, "migrate must be"),
        ({"pool_size": 0}, "pool_size must be an integer of at least 1"),
        ({"pool_size": True}, "pool_size must be an integer"),
        ({"max_overflow": -1}, "max_overflow must be an integer of at least 0"),
        ({"pool_timeout": 0}, "pool_timeout must be a positive number"),
        ({"lock_timeout": "1"}, "lock_timeout must be a positive number"),
    ],
)
def test_bad_settings_fail_before_the_sqlite_file_exists(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "never.db"
    with pytest.raises(ConfigurationError, match=message):
        ControlPlane.open(f"sqlite:///{path}", **options)  # type: ignore[arg-type]
    assert not path.exists()


def test_bad_schema_fails_before_anything_is_created_on_postgresql(
    pg_database: TestDatabase,
) -> None:
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        ControlPlane.open(pg_database.url_string, schema="Robert'); DROP TABLE students;--")
    engine = create_engine(pg_database.url)
    with engine.connect() as connection:
        assert "acp" not in inspect(connection).get_schema_names()
    engine.dispose()


def test_migrate_off_creates_nothing(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string, migrate="off") as control_plane:
        assert control_plane.schema_revision() == ()
        with control_plane.engine.connect() as connection:
            names = inspect(connection).get_table_names()
    assert not [n for n in names if n.startswith("acp_")]


def test_async_url_mapping() -> None:
    assert database_url("sqlite:///x.db", asyncio=True).drivername == "sqlite+aiosqlite"
    assert database_url("postgresql://h/db").drivername == "postgresql+psycopg"
    assert database_url("mysql://h/db", asyncio=True).drivername == "mysql+asyncmy"
    assert database_url("mariadb+pymysql://h/db", asyncio=True).drivername == "mariadb+asyncmy"
    assert database_url("mysql+pymysql://h/db").drivername == "mysql+pymysql"


def test_sqlite_gets_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    with (
        ControlPlane.open(f"sqlite:///{tmp_path / 'p.db'}") as control_plane,
        control_plane.engine.connect() as connection,
    ):
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1}


def test_sqlite_write_transactions_begin_immediate_but_host_engines_keep_theirs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    host = create_engine(f"sqlite:///{path}")

    def write_lock_is_taken() -> bool:
        probe = sqlite3.connect(path, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            locked = "locked" in str(error)
        else:
            probe.rollback()
            locked = False
        probe.close()
        return locked

    with ControlPlane.open(host) as control_plane:
        with control_plane.engine.begin() as connection:
            connection.execute(text("SELECT 1"))  # a read: DEFERRED would take no write lock
            assert write_lock_is_taken()
        with host.begin() as connection:
            connection.execute(text("SELECT 1"))
            assert not write_lock_is_taken()
    host.dispose()
