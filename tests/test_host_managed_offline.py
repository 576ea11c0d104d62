"""Host-managed mode offline: the SQL of ``alembic upgrade --sql`` applies cleanly, as a DBA
would apply it, and leaves a database ACP opens without migrating."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import column, create_engine, select, table
from sqlalchemy.engine import make_url

from agent_control_plane import (
    ControlPlane,
    InvalidInputError,
    MigrationError,
    SchemaNotCurrentError,
)
from agent_control_plane.demo.host_project import HostProject
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.models import Outcome
from agent_control_plane.schema.layout import resolve_layout
from tests.acp_helpers import HEAD
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT

FIRST = "acp_0001"


def _host_url(database: TestDatabase) -> str:
    """The URL in the host's alembic.ini. Offline it names the server the SQL is for, and a
    MariaDB server needs MariaDB's SQL (its own UUID type and collation), not MySQL's."""
    if database.dialect != "mysql":
        return database.url_string
    engine = create_engine(database.url)
    try:
        with engine.connect():  # the dialect learns the server on connect
            mariadb = bool(getattr(engine.dialect, "is_mariadb", False))
    finally:
        engine.dispose()
    if not mariadb:
        return database.url_string
    return database.url.set(drivername="mariadb+pymysql").render_as_string(hide_password=False)


def _host(database: TestDatabase, root: Path, *, pin_start: bool = True) -> HostProject:
    """A host whose first revision brings ACP to its baseline and whose second to head."""
    project = HostProject.create(root, _host_url(database), dialect=database.dialect)
    start = f", from_revision='{FIRST}'" if pin_start else ""
    project.write_revision(
        "h001_acp",
        f"from agent_control_plane.alembic import host\nhost.upgrade(op, to='{FIRST}')",
        "from agent_control_plane.alembic import host\n"
        f"host.downgrade(op, to='base', from_revision='{FIRST}')",
    )
    project.write_revision(
        "h002_acp",
        f"from agent_control_plane.alembic import host\nhost.upgrade(op, to='{HEAD}'{start})",
        "from agent_control_plane.alembic import host\n"
        f"host.downgrade(op, to='{FIRST}', from_revision='{HEAD}')",
    )
    return project


def _offline_sql(project: HostProject, target: str) -> str:
    buffer = io.StringIO()
    config = project.config()
    config.output_buffer = buffer
    command.upgrade(config, target, sql=True)
    return buffer.getvalue()


def _apply(database: TestDatabase, script: str) -> None:
    """Run a whole SQL script the way psql -f, mysql < file or sqlite3 do: as one text."""
    if database.dialect == "sqlite":
        connection = sqlite3.connect(str(database.url.database))
        try:
            connection.executescript(script)
        finally:
            connection.close()
        return
    connect_args: dict[str, object] = {}
    if database.dialect == "mysql":
        from pymysql.constants import CLIENT

        connect_args["client_flag"] = CLIENT.MULTI_STATEMENTS
    engine = create_engine(database.url, isolation_level="AUTOCOMMIT", connect_args=connect_args)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(script)
            while database.dialect == "mysql" and cursor.nextset():
                pass  # MariaDB reports an error in statement n when result n is read
        finally:
            raw.close()
    finally:
        engine.dispose()


def _version_rows(database: TestDatabase, name: str, schema: str | None = None) -> list[str]:
    engine = create_engine(database.url)
    try:
        with engine.connect() as connection:
            versions = table(name, column("version_num"), schema=schema)
            return [row[0] for row in connection.execute(select(versions.c.version_num))]
    finally:
        engine.dispose()


def _assert_current_and_working(database: TestDatabase) -> None:
    layout = resolve_layout(database.dialect)
    assert _version_rows(database, "alembic_version") == ["h002_acp"]
    assert _version_rows(database, layout.version_table, layout.schema) == [HEAD]
    with ControlPlane.open(database.url_string, migrate="verify") as control_plane:
        assert control_plane.schema_revision() == (HEAD,)
        with control_plane.engine.connect() as connection:
            assert control_plane.migrator.drift(connection) == []
        session = control_plane.open_session(
            "support",
            agent_id="bot-1",
            tenant="acme",
            policy=SUPPORT_BOT,
            max_cost="1.00",
            max_actions=10,
        )
        decision = control_plane.govern(session.id, "read_ticket", cost="0.10")
        assert decision.outcome is Outcome.ALLOWED


def test_offline_sql_of_two_host_revisions_applies_cleanly(
    database: TestDatabase, tmp_path: Path
) -> None:
    project = _host(database, tmp_path / "host")
    _apply(database, _offline_sql(project, "head"))
    _assert_current_and_working(database)


@pytest.mark.parametrize("first_step", ["online", "offline"])
def test_offline_sql_of_the_second_host_revision_on_a_database_at_the_first(
    database: TestDatabase, tmp_path: Path, first_step: str
) -> None:
    project = _host(database, tmp_path / "host")
    if first_step == "online":
        project.upgrade("h001_acp")
    else:
        _apply(database, _offline_sql(project, "h001_acp"))
    with pytest.raises(SchemaNotCurrentError, match=f"database has {FIRST}"):
        ControlPlane.open(database.url_string, migrate="verify")
    _apply(database, _offline_sql(project, "h001_acp:head"))
    _assert_current_and_working(database)


def test_offline_sql_follows_acp_from_one_host_revision_to_the_next(
    database: TestDatabase, tmp_path: Path
) -> None:
    """In one run, a host revision without ``from_revision`` starts where the previous left."""
    project = _host(database, tmp_path / "host", pin_start=False)
    _apply(database, _offline_sql(project, "head"))
    _assert_current_and_working(database)


def _sqlite_host(tmp_path: Path, second_upgrade: str) -> HostProject:
    database = TestDatabase("sqlite", make_url(f"sqlite:///{tmp_path / 'host.db'}"))
    project = _host(database, tmp_path / "host")
    project.write_revision(
        "h003_acp", f"from agent_control_plane.alembic import host\n{second_upgrade}", "pass"
    )
    return project


def test_offline_sql_from_a_host_revision_needs_acps_start(tmp_path: Path) -> None:
    """Rendering from h002_acp, nothing says which ACP revision the database is at: refuse
    rather than write SQL that re-creates every table."""
    project = _sqlite_host(tmp_path, f"host.upgrade(op, to='{HEAD}')")
    with pytest.raises(MigrationError, match="pass from_revision="):
        _offline_sql(project, "h002_acp:head")
    assert "h003_acp" in _offline_sql(project, "head")  # from base, each follows the one before


def test_a_from_revision_that_contradicts_the_run_is_refused(tmp_path: Path) -> None:
    project = _sqlite_host(tmp_path, f"host.upgrade(op, to='{HEAD}', from_revision='{FIRST}')")
    with pytest.raises(MigrationError, match=f"leaves ACP at {HEAD}"):
        _offline_sql(project, "head")
    project = _sqlite_host(tmp_path / "2", "host.upgrade(op, from_revision='acp_9999')")
    with pytest.raises(InvalidInputError, match="from_revision: 'acp_9999'"):
        _offline_sql(project, "h002_acp:head")


def test_acp_db_sql_applies_cleanly(database: TestDatabase) -> None:
    """``acp db sql`` (ACP's own offline SQL, for a DBA) renders for the server in the URL."""
    backend = make_url(_host_url(database)).get_backend_name()
    migrator = Migrator(resolve_layout(backend))
    _apply(database, migrator.sql(backend))
    layout = resolve_layout(database.dialect)
    assert _version_rows(database, layout.version_table, layout.schema) == [HEAD]
    with (
        ControlPlane.open(database.url_string, migrate="verify") as control_plane,
        control_plane.engine.connect() as connection,
    ):
        assert control_plane.migrator.drift(connection) == []


def test_offline_sql_of_a_host_downgrade_applies_cleanly(
    database: TestDatabase, tmp_path: Path
) -> None:
    project = _host(database, tmp_path / "host")
    project.upgrade()
    buffer = io.StringIO()
    config = project.config()
    config.output_buffer = buffer
    if database.dialect == "sqlite":
        # SQLite drops a column by rebuilding its table, which alembic reads from the database.
        with pytest.raises(MigrationError, match="acp_0010 cannot be undone as SQL"):
            command.downgrade(config, "h002_acp:h001_acp", sql=True)
        return
    command.downgrade(config, "h002_acp:h001_acp", sql=True)
    _apply(database, buffer.getvalue())
    layout = resolve_layout(database.dialect)
    assert _version_rows(database, "alembic_version") == ["h001_acp"]
    assert _version_rows(database, layout.version_table, layout.schema) == [FIRST]
