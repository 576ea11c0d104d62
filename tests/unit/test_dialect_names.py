"""Where the databases differ, call sites ask a named capability (capabilities.py) and the
statements that differ live in store/dialect.py: no other module of the layers that decide
and write tests a dialect's name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "agent_control_plane"
DIALECT_NAMES = {"postgresql", "sqlite", "mysql", "mariadb"}
# The layers that decide and write; engine setup, migrations and the CLI name dialects to
# configure them, which is their job.
CHECKED = ("operations", "store", "rules", "integrations", "gateway", "dashboard", "telemetry")
CHECKED_MODULES = ("runtime.py", "facade.py", "control_plane.py", "boundary.py", "memory.py")
ALLOWED = {PACKAGE / "store" / "dialect.py"}


def _modules() -> list[Path]:
    found = [path for folder in CHECKED for path in (PACKAGE / folder).rglob("*.py")]
    found += [PACKAGE / name for name in CHECKED_MODULES]
    return [path for path in found if path not in ALLOWED]


def test_no_call_site_tests_a_dialect_name() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in DIALECT_NAMES:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert offenders == [], "ask runtime.capabilities instead:\n" + "\n".join(offenders)


def test_the_check_sees_the_modules_it_means() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in _modules()}
    assert {"store/sessions.py", "store/events.py", "operations/tokens.py", "runtime.py"} <= names
    assert "store/dialect.py" not in names
