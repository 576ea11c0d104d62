"""Running with least privilege: the owner upgrades and grants; the application's role
uses ACP's rows and can change none of its schema."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from agent_control_plane import ControlPlane, MigrationError
from agent_control_plane.cli import app
from agent_control_plane.errors import MaintenanceRoleRequiredError
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


@contextmanager
def _pg_login_role(database: TestDatabase, purpose: str = "app") -> Iterator[Role]:
    """A login role with no rights at all (unique per test, dropped afterwards)."""
    name = f"acpt_{purpose}_{secrets.token_hex(4)}"
    admin = create_engine(database.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'app-secret'"))
    url = database.url.set(username=name, password="app-secret")
    try:
        yield Role(name, url.render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{name}"'))
            connection.execute(text(f'DROP ROLE "{name}"'))
        admin.dispose()


@contextmanager
def _mysql_user(database: TestDatabase, purpose: str = "app") -> Iterator[Role]:
    """An account with no rights (dropped afterwards)."""
    name = f"acpt_{purpose}_{secrets.token_hex(4)}"
    admin = create_engine(database.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'app-secret'"))
    url = database.url.set(username=name, password="app-secret")
    try:
        yield Role(f"{name}@%", url.render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP USER '{name}'@'%'"))
        admin.dispose()


@pytest.fixture
def pg_role(pg_database: TestDatabase) -> Iterator[Role]:
    with _pg_login_role(pg_database) as role:
        yield role


@pytest.fixture
def mysql_account(tmp_path: Path) -> Iterator[tuple[TestDatabase, Role]]:
    """A fresh MariaDB database and an account with no rights (dropped afterwards)."""
    for database in fresh_database("mysql", tmp_path):
        with _mysql_user(database) as account:
            yield database, account


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
    report = cp.run_maintenance(escalate_after="1ms")
    assert report.holds_released == 1
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


AUDIT_KEY = "least-privilege audit key, 32 bytes or more"
PRUNE_EVERYTHING = timedelta(microseconds=1)


def _history_statements(events: str, anchors: str) -> list[str]:
    """What the application's role must never do to history."""
    return [
        f"UPDATE {events} SET reason = 'rewritten'",
        f"DELETE FROM {events}",
        f"INSERT INTO {anchors} (session_id, seq, hash, created_at) "
        f"SELECT session_id, seq, hash, created_at FROM {events} WHERE seq = 1",
        f"UPDATE {anchors} SET hash = 'rewritten'",
        f"DELETE FROM {anchors}",
    ]


def _history_is_added_to_never_changed(
    app: Role, maintenance: Role, events: str, anchors: str, denied: str
) -> None:
    """The application governs and adds history, and can change or delete none of it, nor
    prune; the maintenance role prunes behind a signed anchor; the trail verifies."""
    with ControlPlane.open(app.url, migrate="verify", audit_key=AUDIT_KEY) as cp:
        _governed_flow(cp)
        with pytest.raises(MaintenanceRoleRequiredError, match="--grant-maintenance-to"):
            cp.run_maintenance(event_retention=PRUNE_EVERYTHING)
        events_before = cp.verify_audit().events_checked
    as_app = create_engine(app.url)
    try:
        for statement in _history_statements(events, anchors):
            with as_app.connect() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert denied in str(refused.value), statement
    finally:
        as_app.dispose()
    with ControlPlane.open(maintenance.url, migrate="verify", audit_key=AUDIT_KEY) as pruner:
        report = pruner.run_maintenance(event_retention=PRUNE_EVERYTHING)
    assert (report.events_pruned, report.sessions_pruned) == (events_before, 1)
    with ControlPlane.open(app.url, migrate="verify", audit_key=AUDIT_KEY) as cp:
        audit = cp.verify_audit()
    assert (audit.ok, audit.events_checked) == (True, 0), audit.problems


def test_the_application_role_adds_history_and_never_changes_it_on_postgresql(
    pg_database: TestDatabase,
) -> None:
    owner = ["--url", pg_database.url_string]
    with (
        _pg_login_role(pg_database, "app") as app,
        _pg_login_role(pg_database, "maint") as maintenance,
    ):
        assert _acp("db", "upgrade", *owner)[0] == 0
        admin = create_engine(pg_database.url)
        try:
            with admin.begin() as connection:
                # What an earlier version's --grant-to gave: every row privilege on events.
                connection.execute(text(f'GRANT USAGE ON SCHEMA acp TO "{app.name}"'))
                connection.execute(text(f'GRANT ALL ON acp.events TO "{app.name}"'))
        finally:
            admin.dispose()
        code, output = _acp(
            "db", "upgrade", *owner, "--grant-to", app.name,
            "--grant-maintenance-to", maintenance.name,
        )  # fmt: skip
        assert code == 0, output
        assert f'GRANT SELECT, INSERT ON TABLE acp.events TO "{app.name}"' in output
        assert f'GRANT SELECT, INSERT, DELETE ON TABLE acp.events TO "{maintenance.name}"' in output
        _history_is_added_to_never_changed(
            app, maintenance, "acp.events", "acp.audit_anchors", "permission denied"
        )


def test_the_application_account_adds_history_and_never_changes_it_on_mariadb(
    tmp_path: Path,
) -> None:
    for database in fresh_database("mysql", tmp_path):
        owner = ["--url", database.url_string]
        with _mysql_user(database, "app") as app, _mysql_user(database, "maint") as maintenance:
            assert _acp("db", "upgrade", *owner)[0] == 0
            admin = create_engine(database.url)
            try:
                with admin.begin() as connection:
                    name = app.name.split("@")[0]
                    connection.execute(
                        text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON acp_events TO '{name}'@'%'")
                    )
            finally:
                admin.dispose()
            code, output = _acp(
                "db", "upgrade", *owner, "--grant-to", app.name,
                "--grant-maintenance-to", maintenance.name,
            )  # fmt: skip
            assert code == 0, output
            _history_is_added_to_never_changed(
                app, maintenance, "acp_events", "acp_audit_anchors", "command denied"
            )
