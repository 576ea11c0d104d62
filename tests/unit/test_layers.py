"""The layers import downwards only (docs/explanation/architecture.md): each rule below is
an import check over the source, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "agent_control_plane"
ROOT = "agent_control_plane"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in _imports(path):
            if name == "sqlalchemy" or name.startswith(forbidden):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


def test_rules_are_pure() -> None:
    """Rules do no I/O: no SQLAlchemy, no statements, no tables, no operations. (Two old
    import paths, PriceTable.of(path) and rules.policy.load_policy_file, hand a file to
    loading.py lazily, for old callers; no rule reads a file itself.)"""
    layers = ("store", "schema", "operations", "engine", "runtime", "gateway", "cli")
    forbidden = (*(f"{ROOT}.{name}" for name in layers), "sqlalchemy")
    assert _violations("rules", forbidden) == []


def test_statements_never_reach_up_to_operations_or_the_facades() -> None:
    forbidden = tuple(
        f"{ROOT}.{name}"
        for name in ("operations", "control_plane", "facade", "gateway", "dashboard", "cli")
    )
    assert [v for v in _violations("store", forbidden) if "sqlalchemy" not in v.split()[-1]] == []


def test_values_never_import_statements() -> None:
    names = _imports(PACKAGE / "models.py")
    assert not {n for n in names if n.startswith((f"{ROOT}.store", f"{ROOT}.operations"))}


def _reads_tables(path: Path) -> bool:
    """Whether the module reaches for a table object (``<anything>.tables``)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr == "tables"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_operations_build_no_sql() -> None:
    """SQL lives in store/: operations hold connections and catch SQLAlchemy's errors, and
    never import its statement builders or touch a table."""
    allowed = ("sqlalchemy.engine", "sqlalchemy.exc")
    found = []
    for path in sorted((PACKAGE / "operations").rglob("*.py")):
        for name in _imports(path):
            if (name == "sqlalchemy" or name.startswith("sqlalchemy.")) and name not in allowed:
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
        if _reads_tables(path):
            found.append(f"{path.relative_to(PACKAGE)} reads runtime.tables")
    assert found == []
