"""ACP's own revisions: up, down, drift, adoption of unversioned tables, verify."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, inspect, select, table, text

from agent_control_plane import ControlPlane
from agent_control_plane.errors import MigrationError, SchemaNotCurrentError
from agent_control_plane.migrations.runner import BASELINE, Migrator
from agent_control_plane.schema.tables import LOGICAL_TABLES, build_tables
from tests.acp_helpers import ALL_UPGRADES, engine_for, migrator_for, table_names
from tests.databases import TestDatabase


def test_every_revision_upgrades_and_downgrades(database: TestDatabase) -> None:
    migrator = migrator_for(database)
    revisions = [script.revision for script in reversed(migrator.history())]
    assert revisions[0] == BASELINE
    expected = {migrator.layout.table_name(name) for name in LOGICAL_TABLES}
    with engine_for(database) as engine:
        for revision in revisions:
            with engine.connect() as connection:
                assert migrator.upgrade(connection, revision) == [f"upgrade {revision}"]
            with engine.connect() as connection:
                assert migrator.current(connection) == (revision,)
        assert expected | {migrator.layout.version_table} <= table_names(engine, migrator.layout)
        for revision in reversed(revisions):
            with engine.connect() as connection:
                assert migrator.downgrade(connection, "-1") == [f"downgrade {revision}"]
        assert table_names(engine, migrator.layout) <= {migrator.layout.version_table}
        with engine.connect() as connection:
            assert migrator.current(connection) == ()
            migrator.upgrade(connection)
        with engine.connect() as connection:
            assert migrator.current(connection) == migrator.heads()


def test_head_has_no_drift_and_drift_is_detected(database: TestDatabase) -> None:
    migrator = migrator_for(database)
    layout = migrator.layout
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection)
        with engine.connect() as connection:
            assert migrator.drift(connection) == []
        # Prove the comparison can fail: drop one of our indexes by hand.
        index = f"ix_{layout.table_name('events')}_kind_id"
        qualified = f"{layout.schema}.{index}" if layout.schema else index
        on_table = f" ON {layout.table_name('events')}" if database.dialect == "mysql" else ""
        with engine.begin() as connection:
            connection.execute(text(f"DROP INDEX {qualified}{on_table}"))
        with engine.connect() as connection:
            differences = migrator.drift(connection)
        assert [d[0] for d in differences] == ["add_index"]
        assert differences[0][1].name == index


def test_non_default_layout_migrates_and_has_no_drift(database: TestDatabase) -> None:
    options = {"table_prefix": "gov_"}
    if database.dialect == "postgresql":
        options["schema"] = "governance"
    migrator = migrator_for(database, **options)
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection)
        with engine.connect() as connection:
            assert migrator.drift(connection) == []
        names = table_names(engine, migrator.layout)
    assert "gov_sessions" in names
    assert "gov_version" in names
    assert all(name.startswith("gov_") for name in names)


def _insert_baseline_rows(connection: object, tables: object) -> uuid.UUID:
    now = datetime.now(UTC)
    policy_id, session_id = uuid.uuid4(), uuid.uuid4()
    connection.execute(  # type: ignore[attr-defined]
        insert(tables.policies),  # type: ignore[attr-defined]
        {
            "id": policy_id,
            "name": "p",
            "version": 1,
            "digest": "d" * 64,
            "document": {"name": "p"},
            "created_at": now,
        },
    )
    connection.execute(  # type: ignore[attr-defined]
        insert(tables.sessions),  # type: ignore[attr-defined]
        {
            "id": session_id,
            "agent_id": "a",
            "policy_id": policy_id,
            "status": "active",
            "max_cost": Decimal("12.345678901"),
            "cost_used": Decimal(0),
            "max_actions": 2**40,
            "actions_used": 0,
            "next_seq": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    return session_id


def test_unversioned_tables_are_adopted_and_their_data_survives(database: TestDatabase) -> None:
    """Tables made by create_all (no version row) are stamped at the baseline, then upgraded."""
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    with engine_for(database) as engine:
        with engine.begin() as connection:
            if migrator.layout.owns_schema:
                connection.execute(text(f"CREATE SCHEMA {migrator.layout.schema}"))
            tables.metadata.create_all(connection)
            session_id = _insert_baseline_rows(connection, tables)
        with ControlPlane.open(engine) as control_plane:
            # They already match the models: adopted at head, nothing to run.
            assert control_plane.applied_migrations == ("stamp acp_0008",)
            assert control_plane.schema_revision() == migrator.heads()
        with engine.connect() as connection:
            row = connection.execute(
                select(tables.sessions).where(tables.sessions.c.id == session_id)
            ).one()
    assert row.max_cost == Decimal("12.345678901")
    assert row.max_actions == 2**40


def test_data_written_at_each_revision_survives_upgrade_to_head(database: TestDatabase) -> None:
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection, BASELINE)
        with engine.begin() as connection:
            session_id = _insert_baseline_rows(connection, tables)
        with engine.connect() as connection:
            migrator.upgrade(connection)
        with engine.connect() as connection:
            count = connection.execute(
                select(tables.sessions.c.id).where(tables.sessions.c.id == session_id)
            ).all()
    assert len(count) == 1


def test_a_partial_set_of_tables_is_refused(database: TestDatabase) -> None:
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    with engine_for(database) as engine:
        with engine.begin() as connection:
            if migrator.layout.owns_schema:
                connection.execute(text(f"CREATE SCHEMA {migrator.layout.schema}"))
            tables.policies.create(connection)
        with engine.connect() as connection, pytest.raises(MigrationError, match="not all"):
            migrator.upgrade(connection)
        with engine.connect() as connection:
            assert inspect(connection).get_table_names(schema=migrator.layout.schema) == [
                migrator.layout.table_name("policies")
            ]


def test_verify_names_the_command_to_run(database: TestDatabase) -> None:
    with pytest.raises(SchemaNotCurrentError) as raised:
        ControlPlane.open(database.url_string, migrate="verify")
    error = raised.value
    assert error.current == ()
    assert error.command.startswith("acp db upgrade --url ")
    assert error.command in str(error)
    assert "no ACP tables" in str(error)


def test_verify_on_an_outdated_database(database: TestDatabase) -> None:
    """A database one revision behind the package's head is refused with the command."""
    migrator = migrator_for(database)
    with engine_for(database) as engine, engine.connect() as connection:
        migrator.upgrade(connection, BASELINE)
    head = migrator.heads()
    assert head != (BASELINE,)
    with pytest.raises(
        SchemaNotCurrentError, match=rf"needs {head[0]}\. Run: acp db upgrade"
    ) as raised:
        ControlPlane.open(database.url_string, migrate="verify")
    assert raised.value.current == (BASELINE,)
    assert raised.value.expected == head
    with ControlPlane.open(database.url_string) as control_plane:  # auto: upgrades
        assert control_plane.applied_migrations == ALL_UPGRADES[1:]


def test_verify_passes_on_a_current_database(database: TestDatabase) -> None:
    ControlPlane.open(database.url_string).close()
    with ControlPlane.open(database.url_string, migrate="verify") as control_plane:
        assert control_plane.schema_revision() == control_plane.migrator.heads()
        assert control_plane.applied_migrations == ()


def test_offline_sql_creates_schema_before_version_table() -> None:
    sql = migrator_for_dialect("postgresql").sql("postgresql")
    assert sql.index("CREATE SCHEMA IF NOT EXISTS acp") < sql.index("CREATE TABLE acp.version")
    assert "CREATE TABLE acp.sessions" in sql
    assert "INSERT INTO acp.version (version_num) VALUES ('acp_0001')" in sql
    mysql = migrator_for_dialect("mysql").sql("mysql")
    assert "CREATE TABLE acp_sessions" in mysql
    assert "utf8mb4_nopad_bin" not in mysql


def migrator_for_dialect(dialect: str):  # type: ignore[no-untyped-def]
    from agent_control_plane.migrations.runner import Migrator
    from agent_control_plane.schema.layout import resolve_layout

    return Migrator(resolve_layout(dialect))


def test_unversioned_baseline_tables_are_adopted_and_upgraded(database: TestDatabase) -> None:
    """Tables as the baseline made them, version row lost: stamped at the baseline, then
    every later revision runs, and the data survives."""
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    version = table(migrator.layout.version_table, schema=migrator.layout.schema)
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection, BASELINE)
        with engine.begin() as connection:
            session_id = _insert_baseline_rows(connection, tables)
            connection.execute(delete(version))
        with ControlPlane.open(engine) as control_plane:
            steps = control_plane.applied_migrations
            assert control_plane.schema_revision() == migrator.heads()
        with engine.connect() as connection:
            assert migrator.drift(connection) == []
            found = connection.execute(
                select(tables.sessions.c.id).where(tables.sessions.c.id == session_id)
            ).all()
    assert len(found) == 1
    assert steps == (
        f"stamp {BASELINE}",
        *(f"upgrade {r}" for r in _revisions_after(migrator, BASELINE)),
    )


def _revisions_after(migrator: Migrator, revision: str) -> list[str]:
    ordered = [script.revision for script in reversed(migrator.history())]
    return ordered[ordered.index(revision) + 1 :]
