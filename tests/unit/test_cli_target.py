"""@targeted gives a command --url, --schema and --table-prefix where its ``database``
parameter stands, and print_table shows every cell by one rule (no database needed)."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from agent_control_plane.cli import app
from agent_control_plane.cli.common import THE_DEFAULT_TARGET, Target, cell, targeted

CLI = Path(__file__).resolve().parents[2] / "src" / "agent_control_plane" / "cli"
OPTION_TYPES = {"UrlOption", "SchemaOption", "PrefixOption"}
TARGET_HELP = {
    "--url": "Database URL (default: $ACP_DATABASE_URL, else sqlite:///acp.db).",
    "--schema": "PostgreSQL schema for ACP (default: acp).",
    "--table-prefix": "Prefix for ACP's tables (default: acp_ off PostgreSQL).",
}


def _commands(group: Any, path: str = "acp") -> list[tuple[str, Any]]:
    """Every leaf command under ``group`` (Typer's own Click: groups have ``commands``)."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, f"{path} {name}")
        else:
            found.append((f"{path} {name}", command))
    return found


def test_the_options_stand_where_database_stands() -> None:
    @targeted
    def command(
        name: Annotated[str, typer.Argument()],
        before: Annotated[int, typer.Option()] = 1,
        database: Target = THE_DEFAULT_TARGET,
        after: Annotated[str, typer.Option()] = "x",
    ) -> None:
        """A command."""

    assert list(inspect.signature(command).parameters) == [
        "name",
        "before",
        "url",
        "schema",
        "table_prefix",
        "after",
    ]


def test_the_command_gets_one_target() -> None:
    seen: list[Target] = []
    cli = typer.Typer()

    @cli.command()
    @targeted
    def command(
        name: Annotated[str, typer.Argument()],
        database: Target = THE_DEFAULT_TARGET,
    ) -> None:
        seen.append(database)

    result = CliRunner().invoke(cli, ["n", "--url", "sqlite://", "--table-prefix", "p_"])
    assert result.exit_code == 0, result.output
    assert seen == [Target(url="sqlite://", schema=None, table_prefix="p_")]


def test_a_command_without_database_is_refused() -> None:
    with pytest.raises(TypeError, match="database: Target"):

        @targeted
        def command(name: str) -> None:
            """A command."""


def test_every_command_that_targets_a_database_has_all_three_options() -> None:
    targeting = 0
    for path, leaf in _commands(typer.main.get_command(app)):
        options = {opt: param for param in leaf.params for opt in param.opts}
        present = [name for name in TARGET_HELP if name in options]
        assert present in ([], list(TARGET_HELP)), path
        for name in present:
            assert getattr(options[name], "help", None) == TARGET_HELP[name], (path, name)
        targeting += bool(present)
    assert targeting == 25


def test_cells_follow_one_rule() -> None:
    moment = datetime(2026, 12, 5, 16, 30, 15, 123456, tzinfo=UTC)
    assert cell(None) == ""
    assert cell(moment) == "2026-12-05T16:30:15+00:00"
    assert cell(Decimal("0.0150")) == "0.0150"
    assert cell(3) == "3"


def test_only_common_declares_the_options_or_builds_a_table() -> None:
    repeated = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id in OPTION_TYPES:
                repeated.append(f"{path.name}:{node.lineno} {node.id}")
            if isinstance(node, ast.ImportFrom) and node.module == "rich.table":
                repeated.append(f"{path.name}:{node.lineno} rich.table")
    assert repeated == []
