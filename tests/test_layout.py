"""Layouts and ownership: pure rules, no database."""

from __future__ import annotations

import pytest

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.schema.layout import Layout, resolve_layout
from agent_control_plane.schema.ownership import Ownership
from agent_control_plane.schema.tables import LOGICAL_TABLES, build_tables


def test_postgresql_defaults_to_a_dedicated_schema_without_prefix() -> None:
    assert resolve_layout("postgresql") == Layout("acp", "")


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "mariadb"])
def test_other_dialects_default_to_the_acp_prefix(dialect: str) -> None:
    assert resolve_layout(dialect) == Layout(None, "acp_")


def test_overrides_are_kept() -> None:
    assert resolve_layout("postgresql", schema="gov", table_prefix="x_") == Layout("gov", "x_")
    assert resolve_layout("sqlite", table_prefix="gov_") == Layout(None, "gov_")


@pytest.mark.parametrize(
    "schema", ["", "ACP", "1acp", "acp-x", "acp;drop", "pg_catalog", "information_schema", "a" * 41]
)
def test_bad_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        resolve_layout("postgresql", schema=schema)


@pytest.mark.parametrize("prefix", ["Acp_", "_acp", "acp-", "acp ", "a" * 13, "1a"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid table prefix"):
        resolve_layout("sqlite", table_prefix=prefix)


def test_schema_is_refused_where_it_is_not_supported() -> None:
    with pytest.raises(ConfigurationError, match="only supported on PostgreSQL"):
        resolve_layout("sqlite", schema="acp")


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_empty_prefix_is_refused_in_a_shared_namespace(dialect: str) -> None:
    with pytest.raises(ConfigurationError, match="must not be empty"):
        resolve_layout(dialect, table_prefix="")


def test_public_schema_needs_a_prefix() -> None:
    with pytest.raises(ConfigurationError, match="shared with the application"):
        resolve_layout("postgresql", schema="public")
    assert resolve_layout("postgresql", schema="public", table_prefix="acp_").owns_schema is False


@pytest.mark.parametrize(
    "layout", [Layout("acp", ""), Layout(None, "acp_"), Layout("a" * 40, "b" * 12)]
)
def test_every_identifier_fits_the_strictest_limit(layout: Layout) -> None:
    tables = build_tables(layout)
    names = [t.name for t in tables.all()]
    for table in tables.all():
        names += [str(c.name) for c in table.constraints] + [str(i.name) for i in table.indexes]
    assert max(len(n) for n in names) <= 63, max(names, key=len)


def test_metadata_is_built_once_per_layout() -> None:
    assert build_tables(Layout(None, "acp_")) is build_tables(Layout(None, "acp_"))
    assert build_tables(Layout(None, "acp_")) is not build_tables(Layout(None, "gov_"))


def test_ownership_recognises_exactly_our_tables() -> None:
    ours = Ownership.of([Layout(None, "acp_"), Layout("acp", "")])
    for logical in (*LOGICAL_TABLES, "version"):
        assert ours.owns_table(f"acp_{logical}", None)
        assert ours.owns_table(logical, "acp")
    assert ours.owns_table("anything", "acp")  # a dedicated schema is ours entirely
    assert not ours.owns_table("acp_customers", None)
    assert not ours.owns_table("sessions", None)
    assert not ours.owns_table("acp_sessions", "sales")
    assert ours.owns_schema("acp")
    assert not ours.owns_schema("public")


def test_prefix_layout_in_public_matches_the_default_schema_spelling() -> None:
    ours = Ownership.of([Layout("public", "acp_")])
    assert ours.owns_table("acp_events", None)
    assert ours.owns_table("acp_events", "public")
    assert not ours.owns_schema("public")
