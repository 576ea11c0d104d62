"""``acp db``: every verb, against real databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from agent_control_plane.cli import app
from agent_control_plane.schema.layout import resolve_layout
from tests.databases import TestDatabase

runner = CliRunner()


def acp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_upgrade_current_check_stamp_downgrade(database: TestDatabase) -> None:
    url = database.url_string
    code, output = acp("db", "current", "--url", url)
    assert (code, "base (no ACP tables)" in output) == (1, True)
    code, output = acp("db", "check", "--url", url)
    assert code == 3  # the schema is not current: exit code 3, with the command to run
    assert "acp db upgrade --url" in output

    code, output = acp("db", "upgrade", "acp_0001", "--url", url)
    assert code == 0, output
    assert "applied upgrade acp_0001" in output
    code, output = acp("db", "current", "--url", url)
    assert (code, "acp_0001 (head is acp_0008)" in output) == (1, True)
    code, output = acp("db", "upgrade", "--url", url)
    assert (code, "applied upgrade acp_0002" in output) == (0, True)
    assert "applied upgrade acp_0003" in output
    assert "applied upgrade acp_0004" in output
    assert "applied upgrade acp_0005" in output
    assert "applied upgrade acp_0006" in output
    assert "applied upgrade acp_0007" in output
    assert "applied upgrade acp_0008" in output
    code, output = acp("db", "current", "--url", url)
    assert (code, "acp_0008 (up to date)" in output) == (0, True)
    code, output = acp("db", "check", "--url", url)
    assert (code, "No drift" in output) == (0, True)

    code, output = acp("db", "stamp", "base", "--url", url)
    assert code == 0
    assert acp("db", "current", "--url", url)[0] == 1
    assert acp("db", "stamp", "acp_0008", "--url", url)[0] == 0

    code, output = acp("db", "downgrade", "base", "--url", url)
    assert code == 0, output
    assert "applied downgrade acp_0008" in output
    assert "applied downgrade acp_0007" in output
    assert "applied downgrade acp_0006" in output
    assert "applied downgrade acp_0005" in output
    assert "applied downgrade acp_0004" in output
    assert "applied downgrade acp_0003" in output
    assert "applied downgrade acp_0002" in output
    assert "applied downgrade acp_0001" in output
    layout = resolve_layout(database.dialect)
    engine = create_engine(database.url)
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names(schema=layout.schema))
    engine.dispose()
    assert layout.table_name("sessions") not in names


def test_check_reports_drift(database: TestDatabase) -> None:
    url = database.url_string
    assert acp("db", "upgrade", "--url", url, "--table-prefix", "gov_")[0] == 0
    layout = resolve_layout(database.dialect, table_prefix="gov_")
    engine = create_engine(database.url)
    with engine.begin() as connection:
        connection.execute(
            text(
                f"ALTER TABLE {layout.schema + '.' if layout.schema else ''}gov_agents "
                "ADD COLUMN rogue INTEGER"
            )
        )
    engine.dispose()
    code, output = acp("db", "check", "--url", url, "--table-prefix", "gov_")
    assert code == 1
    assert "remove_column" in output
    assert "rogue" in output


def test_url_and_layout_come_from_the_environment(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_DATABASE_URL", database.url_string)
    monkeypatch.setenv("ACP_TABLE_PREFIX", "env_")
    assert acp("db", "upgrade")[0] == 0
    code, output = acp("db", "current")
    assert (code, "acp_0008 (up to date)" in output) == (0, True)
    layout = resolve_layout(database.dialect, table_prefix="env_")
    engine = create_engine(database.url)
    with engine.connect() as connection:
        assert "env_sessions" in inspect(connection).get_table_names(schema=layout.schema)
    engine.dispose()


def test_sql_prints_ddl_without_connecting() -> None:
    # Nothing listens on port 1: the command must not try.
    code, output = acp("db", "sql", "--url", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 0, output
    assert "CREATE SCHEMA IF NOT EXISTS acp" in output
    assert "CREATE TABLE acp.events" in output
    code, output = acp("db", "sql", "--url", "mysql://x@127.0.0.1:1/y", "--table-prefix", "g_")
    assert code == 0
    assert "CREATE TABLE g_events" in output


def test_history_lists_revisions() -> None:
    code, output = acp("db", "history")
    assert code == 0
    assert "acp_0001" in output
    assert "Baseline" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table-prefix", "Bad!"], "invalid table prefix"),
        (["--url", "oracle://x/y"], "not supported"),
        (["--url", "sqlite:///x.db", "--schema", "acp"], "only supported on PostgreSQL"),
    ],
)
def test_bad_options_exit_2_with_a_clear_error(args: list[str], message: str) -> None:
    code, output = acp("db", "upgrade", *args)
    assert code == 2
    assert message in output
