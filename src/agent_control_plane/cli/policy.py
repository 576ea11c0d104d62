"""``acp policy``: validate and store policy documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    ExitCode,
    JsonOption,
    Target,
    console,
    emit_json,
    errors,
    opened,
    targeted,
)
from agent_control_plane.errors import PolicyError
from agent_control_plane.loading import load_policy_file
from agent_control_plane.rules.policy import PolicyDocument

policy_app = typer.Typer(help="Validate and store policies.", no_args_is_help=True)

FileArgument = Annotated[Path, typer.Argument(help="A policy file (.yaml, .yml or .json).")]


def _load(path: Path, as_json: bool) -> PolicyDocument:
    try:
        return load_policy_file(path)
    except PolicyError as exc:
        problems = exc.problems or [(str(path), str(exc))]
        if as_json:
            emit_json(
                {
                    "valid": False,
                    "problems": [{"place": place, "message": text} for place, text in problems],
                }
            )
        for place, message in problems:
            errors.print(f"[bold red]{place}[/]: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.FAILED) from exc


@policy_app.command()
def validate(path: FileArgument, as_json: JsonOption = False) -> None:
    """Check a policy file; errors name the line and field. Exit 1 if invalid."""
    document = _load(path, as_json)
    if as_json:
        emit_json({"valid": True, "name": document.name, "digest": document.digest})
        return
    console.print(f"{path}: valid policy {document.name!r} (digest {document.digest[:12]})")


@policy_app.command()
@targeted
def apply(
    path: FileArgument,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Store a policy file as an immutable snapshot and print its id and version."""
    _load(path, as_json)
    with opened(database) as control_plane:
        snapshot = control_plane.apply_policy(path)
    if as_json:
        emit_json(
            {
                "id": snapshot.id,
                "name": snapshot.name,
                "version": snapshot.version,
                "digest": snapshot.digest,
            }
        )
        return
    console.print(f"policy {snapshot.name!r} version {snapshot.version}: {snapshot.id}")
