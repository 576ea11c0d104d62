"""The ``acp`` command line."""

from __future__ import annotations

import typer

from agent_control_plane.cli.db import db_app
from agent_control_plane.cli.demo import demo

app = typer.Typer(
    name="acp",
    help="agent-control-plane: governance for AI agents in your own database.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.command("demo")(demo)


def main() -> None:
    app()
