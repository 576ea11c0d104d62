"""Running with least privilege: the owner upgrades and grants; the application's role
uses ACP's rows and can change none of its schema."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from agent_control_plane import ControlPlane, MigrationError
from agent_control_plane.cli import app
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.acp_helpers import REVISIONS
from tests.databases import TestDatabase, fresh_database
from tests.gateway_helpers import POLICY as GATEWAY_POLICY
from tests.gateway_helpers import gateway_on
from tests.maintenance_helpers import POLICY, PRICES

runner = CliRunner()
PREVIOUS = REVISIONS[-2]


@dataclass(frozen=True)
class Role:
    name: str
    url: str


def _acp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def pg_role(pg_database: TestDatabase) -> Iterator[Role]:
    """A login role with no rights at all (unique per test, dropped afterwards)."""
    name = f"acpt_app_{secrets.token_hex(4)}"
    admin = create_engine(pg_database.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'app-secret'"))
    url = pg_database.url.set(username=name, password="app-secret")
    try:
        yield Role(name, url.render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{name}"'))
            connection.execute(text(f'DROP ROLE "{name}"'))
        admin.dispose()


@pytest.fixture
def mysql_account(tmp_path: Path) -> Iterator[tuple[TestDatabase, Role]]:
    """A fresh MariaDB database and an account with no rights (dropped afterwards)."""
    for database in fresh_database("mysql", tmp_path):
        name = f"acpt_app_{secrets.token_hex(4)}"
        admin = create_engine(database.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'app-secret'"))
        url = database.url.set(username=name, password="app-secret")
        try:
            yield database, Role(f"{name}@%", url.render_as_string(hide_password=False))
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP USER '{name}'@'%'"))
            admin.dispose()


def _governed_flow(cp: ControlPlane) -> None:
    """Sessions, govern, approvals, outcomes, tokens, kill, maintenance and audit."""
    sid = cp.open_session(
        agent_id="agent", policy=POLICY, max_cost=10, max_actions=100, idempotency_key="k1"
    ).id
    assert cp.govern(sid, "work", cost="0.5").allowed
    asked = cp.govern(sid, "issue_refund", args={"amount": 5}, cost="1")
    assert asked.ticket_id is not None
    cp.approve(asked.ticket_id, "alice")
    approved = cp.govern(sid, "issue_refund", args={"amount": 5}, cost="1")
    assert approved.allowed
    cp.record_outcome(approved, "succeeded", actual_cost="0.9")
    cp.heartbeat(sid)
    cp.set_prices(PRICES)
    org = Identity(org="acme")
    cp.set_token_budget(org, "day", max_tokens=10_000)
    hold = cp.reserve_tokens(org, "small", input_tokens=10, max_output_tokens=10)
    cp.settle(hold, TokenUsage(input_tokens=10, output_tokens=5))
    cp.reserve_tokens(org, "small", input_tokens=1, max_output_tokens=1, ttl=timedelta(0, 0, 1))
    assert cp.kill_session(sid) == 1
    report = cp.run_maintenance(event_retention=timedelta(microseconds=1), escalate_after="1ms")
    assert report.holds_released == 1
    assert report.events_pruned > 0
    assert cp.verify_audit().ok


def _schema_of(engine: Engine) -> tuple[set[str], set[tuple[str, str]]]:
    """ACP's tables, and every index with its definition."""
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names(schema="acp"))
        indexes = connection.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'acp'")
        )
        return tables, {(str(name), str(definition)) for name, definition in indexes}


def test_a_role_granted_by_the_upgrade_governs_but_cannot_change_the_schema(
    pg_database: TestDatabase, pg_role: Role
) -> None:
    owner = ["--url", pg_database.url_string]
    code, output = _acp("db", "upgrade", PREVIOUS, *owner, "--grant-to", pg_role.name)
    assert code == 0, output
    assert f'GRANT SELECT ON TABLE acp.version TO "{pg_role.name}"' in output

    admin = create_engine(pg_database.url)
    try:
        before = _schema_of(admin)
        # Behind the package's head, migrate="auto" as the role stops with a clear error...
        with pytest.raises(MigrationError, match=r"may not change ACP's schema.*--grant-to"):
            ControlPlane.open(pg_role.url, migrate="auto")
        # ... and changed nothing: still at the previous revision, same tables and indexes.
        with admin.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM acp.version")).scalar()
        assert revision == PREVIOUS
        assert _schema_of(admin) == before

        code, output = _acp("db", "upgrade", *owner, "--grant-to", pg_role.name)
        assert code == 0, output
        with ControlPlane.open(pg_role.url, migrate="verify") as cp:
            _governed_flow(cp)
        # At head, "auto" has nothing to do and so needs no DDL either.
        ControlPlane.open(pg_role.url, migrate="auto").close()

        as_role = create_engine(pg_role.url)
        try:
            for statement in (
                "CREATE TABLE acp.intruder (id int)",
                "DROP TABLE acp.events",
                "ALTER TABLE acp.sessions ADD COLUMN extra int",
                "UPDATE acp.version SET version_num = 'acp_0001'",
                "DELETE FROM acp.version",
            ):
                with as_role.connect() as connection, pytest.raises(DBAPIError) as refused:
                    connection.execute(text(statement))
                assert "permission denied" in str(refused.value) or "must be owner" in str(
                    refused.value
                )
        finally:
            as_role.dispose()
    finally:
        admin.dispose()


def test_a_mariadb_account_granted_by_the_upgrade_governs_but_cannot_change_the_schema(
    mysql_account: tuple[TestDatabase, Role],
) -> None:
    database, account = mysql_account
    code, output = _acp("db", "upgrade", "--url", database.url_string, "--grant-to", account.name)
    assert code == 0, output
    with ControlPlane.open(account.url, migrate="verify") as cp:
        _governed_flow(cp)
    as_account = create_engine(account.url)
    try:
        for statement in (
            "CREATE TABLE acp_intruder (id int)",
            "DROP TABLE acp_events",
            "UPDATE acp_version SET version_num = 'acp_0001'",
        ):
            with as_account.connect() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert "command denied" in str(refused.value)
    finally:
        as_account.dispose()


def test_grant_to_on_sqlite_is_a_clear_error_before_anything_is_created(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    code, output = _acp("db", "upgrade", "--url", f"sqlite:///{path}", "--grant-to", "app")
    assert code == 2
    assert "SQLite has no roles" in output
    assert not path.exists()


def test_bad_role_names_and_missing_roles_are_refused(pg_database: TestDatabase) -> None:
    owner = ["--url", pg_database.url_string]
    code, output = _acp("db", "upgrade", *owner, "--grant-to", 'app"; DROP SCHEMA acp; --')
    assert code == 2
    assert "invalid PostgreSQL role name" in output
    code, output = _acp("db", "upgrade", *owner, "--grant-to", "acpt_nobody_at_all")
    assert code == 1
    assert "could not grant" in output


def test_the_gateway_runs_as_a_role_with_only_row_rights(
    pg_database: TestDatabase, pg_role: Role
) -> None:
    """The REST gateway needs nothing beyond what --grant-to gives: keys, sessions, govern,
    approvals and readiness all work as the application's role."""
    code, output = _acp(
        "db", "upgrade", "--url", pg_database.url_string, "--grant-to", pg_role.name
    )
    assert code == 0, output
    with gateway_on(pg_role.url, migrate="verify") as gateway:
        assert gateway.client.get("/readyz").status_code == 200
        admin = gateway.as_role("admin")
        agent = gateway.as_role("agent", agents=["bot"])
        approver = gateway.as_role("approver", name="alice")
        policy = admin.post("/v1/policies", GATEWAY_POLICY)
        assert policy.status_code == 201, policy.text
        body = {"agent_id": "bot", "policy": policy.json()["id"], "max_cost": "5", "max_actions": 9}
        opened = agent.post("/v1/sessions", body)
        assert opened.status_code == 201, opened.text
        sid = opened.json()["id"]
        asked = agent.post(f"/v1/sessions/{sid}/govern", {"action": "refund", "args": {"n": 1}})
        ticket = asked.json()["ticket_id"]
        assert approver.post(f"/v1/approvals/{ticket}/approve", {}).status_code == 200
        again = agent.post(f"/v1/sessions/{sid}/govern", {"action": "refund", "args": {"n": 1}})
        assert again.json()["outcome"] == "allowed"
        assert admin.get("/v1/audit/verify").json()["ok"] is True
