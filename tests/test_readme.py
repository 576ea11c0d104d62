"""The README's and the reference pages' promises that can be checked mechanically."""

from __future__ import annotations

import re
from pathlib import Path

from docs.generators import database

from agent_control_plane.schema.layout import resolve_layout
from agent_control_plane.schema.tables import LOGICAL_TABLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    # The title, a one-line description, then the two commands before anything else.
    opening = README.split("```")[0].strip().splitlines()
    assert opening[0].startswith("# ")
    assert len([line for line in opening[1:] if line.strip()]) <= 2
    assert README.split("```")[1].strip().splitlines() == ["make demo", "make test"]


def test_readme_is_short_and_links_into_the_docs() -> None:
    assert len(README.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / target).is_file(), target


def test_the_database_reference_lists_every_table_on_every_dialect() -> None:
    page = database.render()
    for dialect in ("postgresql", "sqlite"):
        layout = resolve_layout(dialect)
        qualify = f"{layout.schema}." if layout.schema else ""
        for name in (*LOGICAL_TABLES, "version"):
            assert f"`{qualify}{layout.table_name(name)}`" in page, (dialect, name)
