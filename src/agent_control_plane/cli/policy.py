"""``acp policy``: validate and store policy documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    PrefixOption,
    SchemaOption,
    UrlOption,
    console,
    errors,
    opened,
)
from agent_control_plane.errors import PolicyError
from agent_control_plane.rules.policy import load_policy_file

policy_app = typer.Typer(help="Validate and store policies.", no_args_is_help=True)

FileArgument = Annotated[Path, typer.Argument(help="A policy file (.yaml, .yml or .json).")]


def _load(path: Path) -> None:
    try:
        load_policy_file(path)
    except PolicyError as exc:
        for place, message in exc.problems or [(str(path), str(exc))]:
            errors.print(f"[bold red]{place}[/]: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


@policy_app.command()
def validate(path: FileArgument) -> None:
    """Check a policy file; errors name the line and field. Exit 1 if invalid."""
    _load(path)
    document = load_policy_file(path)
    console.print(f"{path}: valid policy {document.name!r} (digest {document.digest[:12]})")


@policy_app.command()
def apply(
    path: FileArgument,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Store a policy file as an immutable snapshot and print its id and version."""
    _load(path)
    with opened(url, schema, table_prefix) as control_plane:
        snapshot = control_plane.apply_policy(path)
    console.print(f"policy {snapshot.name!r} version {snapshot.version}: {snapshot.id}")
