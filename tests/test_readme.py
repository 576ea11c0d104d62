"""The README's promises that can be checked mechanically."""

from __future__ import annotations

from pathlib import Path

from agent_control_plane.schema.layout import resolve_layout
from agent_control_plane.schema.tables import LOGICAL_TABLES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    assert README.split("```")[1].strip().splitlines() == ["make demo", "make test"]


def test_readme_lists_every_table_on_every_dialect() -> None:
    for dialect in ("postgresql", "sqlite"):
        layout = resolve_layout(dialect)
        qualify = f"{layout.schema}." if layout.schema else ""
        for name in (*LOGICAL_TABLES, "version"):
            assert f"`{qualify}{layout.table_name(name)}`" in README, (dialect, name)
