"""A synthetic host project (own models, own alembic_version, a foreign key to an ACP
table) driven through alembic's real command API: its autogenerate never sees ACP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.operations import ops
from sqlalchemy import String, column, create_engine, inspect, select, table

from agent_control_plane import ControlPlane
from agent_control_plane.demo.host_project import HostProject, models_source
from agent_control_plane.schema.layout import Layout, resolve_layout
from agent_control_plane.testing import acp_operations
from tests.acp_helpers import HEAD
from tests.databases import TestDatabase


def _summary(operations: list[Any]) -> set[tuple[str, str | None]]:
    return {
        (type(op).__name__, getattr(op, "table_name", None))
        for op in operations
        if not isinstance(op, ops.ModifyTableOps)
    }


def _ops(project: HostProject, monkeypatch: pytest.MonkeyPatch, *, guard: bool) -> list[Any]:
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "1" if guard else "0")
    return project.autogenerate_operations()


def _project(
    database: TestDatabase, tmp_path: Path, variant: str = "plain", **options: Any
) -> HostProject:
    return HostProject.create(
        tmp_path / f"host-{variant}",
        database.url_string,
        dialect=database.dialect,
        variant=variant,
        **options,
    )


HOST_CREATES = {
    ("CreateTableOp", "customers"),
    ("CreateTableOp", "agent_runs"),
    ("CreateTableOp", "legacy_notes"),
}


@pytest.fixture
def acp_database(database: TestDatabase) -> TestDatabase:
    ControlPlane.open(database.url_string).close()
    return database


def test_unmodified_env_with_the_guard_proposes_only_host_tables(
    acp_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(acp_database, tmp_path)
    operations = _ops(project, monkeypatch, guard=True)
    assert acp_operations(operations) == []
    assert _summary(operations) == HOST_CREATES


@pytest.mark.parametrize("variant", ["filter", "options"])
def test_explicit_filters_work_with_the_guard_off(
    acp_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    project = _project(acp_database, tmp_path, variant)
    operations = _ops(project, monkeypatch, guard=False)
    assert acp_operations(operations) == []
    assert _summary(operations) == HOST_CREATES


def test_without_guard_or_filter_acp_drops_appear(
    acp_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure ACP exists to prevent, reproduced: proves the other tests can fail."""
    layout = resolve_layout(acp_database.dialect)
    if acp_database.dialect == "postgresql":
        # Without include_schemas, alembic never reflects schema "acp": the danger
        # there is a CREATE of the host's stub over ACP's real table.
        project = _project(acp_database, tmp_path)
        found = acp_operations(_ops(project, monkeypatch, guard=False))
        assert ("CreateTableOp", "sessions") in _summary(found)
        project = _project(acp_database, tmp_path / "schemas", include_schemas=True)
    else:
        project = _project(acp_database, tmp_path)
    found = acp_operations(_ops(project, monkeypatch, guard=False))
    dropped = {op.table_name for op in found if isinstance(op, ops.DropTableOp)}
    assert layout.table_name("events") in dropped
    assert layout.version_table in dropped


def test_host_changes_are_still_detected(
    acp_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(acp_database, tmp_path)
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "1")
    project.revision("host tables")
    project.upgrade()
    assert _ops(project, monkeypatch, guard=True) == []
    project.write_models(
        models_source(acp_database.dialect, extra_customer_column=True, legacy_table=False)
    )
    operations = _ops(project, monkeypatch, guard=True)
    assert acp_operations(operations) == []
    assert _summary(operations) == {("AddColumnOp", "customers"), ("DropTableOp", "legacy_notes")}


def test_version_tables_are_never_shared(
    acp_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(acp_database, tmp_path)
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "1")
    host_revision = project.revision("host tables").name.split("_")[0]
    project.upgrade()
    layout = resolve_layout(acp_database.dialect)
    engine = create_engine(acp_database.url)

    def versions() -> tuple[list[str], list[str]]:
        version = column("version_num", String())
        with engine.connect() as connection:
            host = connection.execute(select(version).select_from(table("alembic_version")))
            acp = connection.execute(
                select(version).select_from(table(layout.version_table, schema=layout.schema))
            )
            return list(host.scalars()), list(acp.scalars())

    assert versions() == ([host_revision], [HEAD])
    with ControlPlane.open(acp_database.url_string) as control_plane:
        with control_plane.engine.connect() as connection:
            control_plane.migrator.stamp(connection, "base")
        assert versions() == ([host_revision], [])
        with control_plane.engine.connect() as connection:
            control_plane.migrator.stamp(connection, HEAD)
        with control_plane.engine.connect() as connection:
            assert control_plane.migrator.upgrade(connection) == []
    assert versions() == ([host_revision], [HEAD])
    project.downgrade("base")
    assert versions() == ([], [HEAD])
    with engine.connect() as connection:
        assert layout.table_name("sessions") in inspect(connection).get_table_names(
            schema=layout.schema
        )
    engine.dispose()


def _custom_layout(dialect: str) -> dict[str, str]:
    return (
        {"schema": "gov", "table_prefix": "g_"}
        if dialect == "postgresql"
        else {"table_prefix": "gov_"}
    )


def test_non_default_layout_is_recognised_by_the_guard_from_the_database(
    database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = _custom_layout(database.dialect)
    ControlPlane.open(
        database.url_string, schema=custom.get("schema"), table_prefix=custom["table_prefix"]
    ).close()
    project = _project(
        database, tmp_path, acp_schema=custom.get("schema"), acp_prefix=custom["table_prefix"]
    )
    layout = resolve_layout(database.dialect, **custom)
    operations = _ops(project, monkeypatch, guard=True)
    assert acp_operations(operations, {layout}) == []
    assert _summary(operations) == HOST_CREATES
    # ...and the same run without the guard does touch them (the check can fail).
    assert acp_operations(_ops(project, monkeypatch, guard=False), {layout})


def test_non_default_layout_with_the_explicit_filter(
    database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = _custom_layout(database.dialect)
    ControlPlane.open(
        database.url_string, schema=custom.get("schema"), table_prefix=custom["table_prefix"]
    ).close()
    arguments = ", ".join(f"{key}={value!r}" for key, value in custom.items())
    project = _project(
        database,
        tmp_path,
        "options",
        acp_schema=custom.get("schema"),
        acp_prefix=custom["table_prefix"],
        filter_layout=arguments,
    )
    layout = resolve_layout(database.dialect, **custom)
    operations = _ops(project, monkeypatch, guard=False)
    assert acp_operations(operations, {layout}) == []
    assert _summary(operations) == HOST_CREATES


@pytest.mark.parametrize(("variant", "guard"), [("plain", True), ("options", False)])
@pytest.mark.parametrize("custom", [False, True])
def test_postgresql_with_include_schemas(
    pg_database: TestDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    guard: bool,
    custom: bool,
) -> None:
    options = {"schema": "gov", "table_prefix": "g_"} if custom else {}
    ControlPlane.open(
        pg_database.url_string,
        schema=options.get("schema"),
        table_prefix=options.get("table_prefix"),
    ).close()
    arguments = ", ".join(f"{key}={value!r}" for key, value in options.items())
    project = _project(
        pg_database,
        tmp_path,
        variant,
        include_schemas=True,
        acp_schema=options.get("schema"),
        acp_prefix=options.get("table_prefix"),
        filter_layout=arguments,
    )
    layouts = {Layout("acp", ""), resolve_layout("postgresql", **options)}
    operations = _ops(project, monkeypatch, guard=guard)
    assert acp_operations(operations, layouts) == []
    assert not [op for op in operations if isinstance(op, ops.DropTableOp)]
    assert _summary(operations) == HOST_CREATES
