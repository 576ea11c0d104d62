"""Opening: both ways of opening AsyncControlPlane, and every bad setting a clear
ConfigurationError before anything connects or is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from agent_control_plane import AsyncControlPlane, ConfigurationError, ControlPlane
from agent_control_plane.errors import ControlPlaneClosedError
from tests.acp_helpers import HEAD
from tests.databases import TestDatabase


async def test_async_open_works_as_a_context_manager_and_awaited(database: TestDatabase) -> None:
    async with AsyncControlPlane.open(database.async_url_string) as cp:
        assert await cp.schema_revision() == (HEAD,)
    with pytest.raises(ControlPlaneClosedError):
        await cp.schema_revision()  # the block's end closed it
    opened = await AsyncControlPlane.open(database.async_url_string, migrate="verify")
    try:
        assert await opened.schema_revision() == (HEAD,)
    finally:
        await opened.close()


def test_an_empty_url_is_an_error_not_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="url is empty"):
        ControlPlane.open("")
    with pytest.raises(ConfigurationError, match="url is empty"):
        AsyncControlPlane.open("  ")
    monkeypatch.setenv("ACP_DATABASE_URL", "")
    with pytest.raises(ConfigurationError, match="ACP_DATABASE_URL is set but empty"):
        ControlPlane.open()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACP_MIGRATE", "sometimes"),
        ("ACP_IDEMPOTENCY_RETENTION", "-5 days"),
        ("ACP_IDEMPOTENCY_RETENTION", "0"),
    ],
)
def test_an_invalid_environment_setting_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    path = tmp_path / "never.db"
    with pytest.raises(ConfigurationError, match=f"{variable}={value!r}"):
        ControlPlane.open(f"sqlite:///{path}")
    with pytest.raises(ConfigurationError, match=variable):
        AsyncControlPlane.open(f"sqlite:///{path}")
    assert not path.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite+aiosqlite:///never.db", "asyncio driver.*AsyncControlPlane.open"),
        ("mysql+asyncmy://root@127.0.0.1/never", "asyncio driver.*AsyncControlPlane.open"),
        ("postgresql+asyncpg://u@h/never", "asyncio driver.*AsyncControlPlane.open"),
    ],
)
def test_an_async_url_in_the_sync_class_says_which_class_takes_it(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        ControlPlane.open(url)
    assert list(tmp_path.iterdir()) == []


def test_a_sync_only_driver_in_the_async_class_says_which_class_takes_it() -> None:
    with pytest.raises(
        ConfigurationError, match=r"cannot be used with asyncio.*ControlPlane\.open"
    ):
        AsyncControlPlane.open("mysql+mysqldb://root@127.0.0.1/never")
    # Drivers ACP knows the async twin of are switched, as before.
    assert AsyncControlPlane.open is not None


async def test_an_engine_of_the_other_kind_says_which_class_takes_it(tmp_path: Path) -> None:
    sync_engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        with pytest.raises(ConfigurationError, match=r"got an AsyncEngine.*AsyncControlPlane"):
            ControlPlane.open(async_engine)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"got a sync Engine.*ControlPlane\.open"):
            AsyncControlPlane.open(sync_engine)  # type: ignore[arg-type]
    finally:
        sync_engine.dispose()
        await async_engine.dispose()


async def test_a_url_option_the_driver_does_not_take_is_a_configuration_error(
    mysql_database: TestDatabase,
) -> None:
    """PyMySQL raises TypeError for a keyword it does not know, and AsyncControlPlane gives a
    PyMySQL URL the asyncmy driver with its query unchanged: ssl_disabled, a PyMySQL option,
    reached asyncmy as a raw TypeError. Both are a setting to correct, and nothing is made."""
    url = mysql_database.url.difference_update_query(["ssl_disabled"])
    with pytest.raises(ConfigurationError, match=r"'pymysql' does not take .*no_such_option"):
        ControlPlane.open(url.update_query_dict({"no_such_option": "1"}))
    pymysql_only = url.update_query_dict({"ssl_disabled": "true"})
    with pytest.raises(ConfigurationError, match=r"'asyncmy' does not take .*ssl_disabled"):
        await AsyncControlPlane.open(pymysql_only.render_as_string(hide_password=False))
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW TABLES").all() == []
    finally:
        engine.dispose()


def test_pool_settings_size_the_pool_acp_creates(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string, pool_size=3, max_overflow=2, pool_timeout=4) as cp:
        pool = cp.engine.pool
        assert (pool.size(), pool._max_overflow, pool.timeout()) == (3, 2, 4)  # type: ignore[attr-defined]


def test_pool_settings_are_refused_with_a_host_engine(tmp_path: Path) -> None:
    host = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        with pytest.raises(ConfigurationError, match="apply to an engine ACP creates"):
            ControlPlane.open(host, pool_size=3)
    finally:
        host.dispose()
