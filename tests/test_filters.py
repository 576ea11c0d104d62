"""The explicit host filters, as pure functions over SQLAlchemy objects."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Uuid

from agent_control_plane.alembic import (
    acp_autogenerate_options,
    acp_table_stub,
    include_acp_names,
    include_acp_tables,
)
from agent_control_plane.schema.tables import TABLE_COMMENT


def _host_metadata(dialect: str) -> tuple[Table, Table]:
    metadata = MetaData()
    stub = acp_table_stub(metadata, "sessions", dialect=dialect)
    runs = Table(
        "agent_runs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("acp_session_id", Uuid, ForeignKey(stub.c.id)),
    )
    return stub, runs


def test_stub_is_rejected_and_the_host_foreign_key_to_it_is_kept() -> None:
    for dialect, name in (("postgresql", "sessions"), ("sqlite", "acp_sessions")):
        stub, runs = _host_metadata(dialect)
        assert stub.name == name
        include = include_acp_tables()
        assert include(stub, stub.name, "table", False, None) is False
        assert include(stub.c.id, "id", "column", False, None) is False
        assert include(runs, "agent_runs", "table", False, None) is True
        (foreign_key,) = runs.foreign_key_constraints
        assert include(foreign_key, None, "foreign_key_constraint", False, None)


def test_host_callables_still_decide_about_their_own_objects() -> None:
    _, runs = _host_metadata("sqlite")
    calls: list[str] = []

    def host_include_object(obj: object, name: str | None, *rest: object) -> bool:
        calls.append(str(name))
        return name != "agent_runs"

    include = include_acp_tables(host_include_object)
    assert include(runs, "agent_runs", "table", False, None) is False
    assert calls == ["agent_runs"]
    names = include_acp_names(lambda name, type_, parent: name != "secret")
    assert names("secret", "table", {"schema_name": None}) is False
    assert names("acp", "schema", {}) is False
    assert names("acp_events", "table", {"schema_name": None}) is False
    assert names("public", "schema", {}) is True


def test_layouts_given_in_code_are_rejected() -> None:
    metadata = MetaData()
    custom = Table("g_events", metadata, Column("id", Integer, primary_key=True), schema="gov")
    assert include_acp_tables()(custom, custom.name, "table", True, None) is True
    options = acp_autogenerate_options(schema="gov", table_prefix="g_")
    assert options["include_object"](custom, custom.name, "table", True, None) is False
    assert options["include_name"]("gov", "schema", {}) is False


def test_a_reflected_table_with_acp_comment_is_recognised_in_any_layout() -> None:
    metadata = MetaData()
    reflected = Table("zz_events", metadata, Column("id", Integer), comment=TABLE_COMMENT)
    assert include_acp_tables()(reflected, reflected.name, "table", True, None) is False
    assert include_acp_tables()(reflected.c.id, "id", "column", True, None) is False
