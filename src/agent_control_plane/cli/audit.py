"""``acp audit``: verify the tamper-evident event chains."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from agent_control_plane.cli.common import (
    ExitCode,
    JsonOption,
    PrefixOption,
    ProgressOption,
    SchemaOption,
    UrlOption,
    console,
    opened,
    progress_bar,
)

audit_app = typer.Typer(help="Verify the audit trail.", no_args_is_help=True)


@audit_app.command()
def verify(
    session: Annotated[str | None, typer.Option("--session", help="Only this session id.")] = None,
    as_json: JsonOption = False,
    show_progress: ProgressOption = None,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Recompute every hash chain; name each edited, missing, inserted or reordered event.
    Exit 1 if anything is wrong."""
    with (
        opened(url, schema, table_prefix) as control_plane,
        progress_bar("verifying sessions", show_progress) as update,
    ):
        report = control_plane.verify_audit(session, progress=update)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "sessions_checked": report.sessions_checked,
                    "events_checked": report.events_checked,
                    "problems": [
                        {
                            "session_id": str(p.session_id),
                            "seq": p.seq,
                            "problem": p.problem,
                            "detail": p.detail,
                        }
                        for p in report.problems
                    ],
                }
            )
        )
    elif report.ok:
        console.print(
            f"[green]audit trail intact[/]: {report.events_checked} events in "
            f"{report.sessions_checked} sessions"
        )
    else:
        table = Table("session", "seq", "problem", "detail", title="Audit problems")
        for problem in report.problems:
            table.add_row(
                str(problem.session_id), str(problem.seq), problem.problem, problem.detail
            )
        console.print(table)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)
