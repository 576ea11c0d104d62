"""The ``acp`` command line."""

from __future__ import annotations

import typer

from agent_control_plane.cli.audit import audit_app
from agent_control_plane.cli.db import db_app
from agent_control_plane.cli.demo import demo
from agent_control_plane.cli.policy import policy_app

app = typer.Typer(
    name="acp",
    help="agent-control-plane: governance for AI agents in your own database.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.command("demo")(demo)


def main() -> None:
    app()
