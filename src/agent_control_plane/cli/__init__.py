"""The ``acp`` command line."""

from __future__ import annotations

import typer

from agent_control_plane.cli.audit import audit_app
from agent_control_plane.cli.common import exit_codes_help
from agent_control_plane.cli.db import db_app
from agent_control_plane.cli.demo import demo
from agent_control_plane.cli.events import events_app
from agent_control_plane.cli.keys import keys_app
from agent_control_plane.cli.kill import kill, kills
from agent_control_plane.cli.mcp_proxy import mcp_proxy
from agent_control_plane.cli.operate import approvals_app, sessions_app
from agent_control_plane.cli.policy import policy_app
from agent_control_plane.cli.serve import serve
from agent_control_plane.cli.tokens import budgets, tokens_app
from agent_control_plane.cli.worker import worker

app = typer.Typer(
    name="acp",
    help="agent-control-plane: governance for AI agents in your own database.",
    epilog=exit_codes_help(),
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from agent_control_plane.version import DISTRIBUTION, __version__

        typer.echo(f"acp ({DISTRIBUTION}) {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    """agent-control-plane: governance for AI agents in your own database."""


app.add_typer(db_app, name="db")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(sessions_app, name="sessions")
app.add_typer(approvals_app, name="approvals")
app.command("kill")(kill)
app.command("kills")(kills)
app.add_typer(events_app, name="events")
app.add_typer(tokens_app, name="tokens")
app.command("budgets")(budgets)
app.add_typer(keys_app, name="keys")
app.command("serve")(serve)
app.command("demo")(demo)
app.command("mcp-proxy")(mcp_proxy)
app.command("worker")(worker)


def main() -> None:
    app()
