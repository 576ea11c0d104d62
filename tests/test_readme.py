"""The README's and the reference pages' promises that can be checked mechanically."""

from __future__ import annotations

import ast
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


def _every_error_class() -> set[str]:
    """Every ControlPlaneError subclass the package defines, integrations included: read
    from the source, so that no optional SDK has to be imported."""
    bases: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "agent_control_plane").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {ast.unparse(base).split(".")[-1] for base in node.bases}
    found = {"ControlPlaneError"}
    while True:
        more = {name for name, parents in bases.items() if parents & found} - found
        if not more:
            return found - {"ControlPlaneError"}
        found |= more


def test_the_failure_section_and_the_errors_page_name_every_error() -> None:
    failures = README.split("## Failures", 1)[1].split("\n## ", 1)[0]
    errors_page = (ROOT / "docs" / "concepts" / "errors.md").read_text(encoding="utf-8")
    every = _every_error_class()
    assert {"GovernanceUnavailableError", "ActionInProgressError"} <= every
    assert sorted(name for name in every if f"`{name}`" not in failures) == []
    assert sorted(name for name in every if f"`{name}`" not in errors_page) == []
