"""Operator commands: sessions and approvals, over the public API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agent_control_plane.cli.common import (
    JsonOption,
    PrefixOption,
    SchemaOption,
    UrlOption,
    console,
    emit_json,
    emit_json_list,
    opened,
    plain,
)

sessions_app = typer.Typer(help="List and inspect sessions.", no_args_is_help=True)
approvals_app = typer.Typer(help="The approval queue: list, approve, deny.", no_args_is_help=True)


@sessions_app.command("list")
def sessions_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Sessions, newest first."""
    with opened(url, schema, table_prefix) as cp:
        page = cp.list_sessions(status=status, agent_id=agent, tenant=tenant, limit=limit)
    if as_json:
        emit_json_list(page.items)
        return
    table = Table("session", "agent", "tenant", "status", "actions", "cost")
    for s in page.items:
        table.add_row(
            str(s.id),
            s.agent_id,
            s.tenant or "",
            s.status,
            f"{s.actions_used}/{s.max_actions}",
            f"${s.cost_used:.4f}/${s.max_cost:.2f}",
        )
    console.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: str,
    as_json: JsonOption = False,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """One session's state."""
    with opened(url, schema, table_prefix) as cp:
        session = cp.get_session(session_id)
    if as_json:
        emit_json(session)
        return
    table = Table(show_header=False, title=f"session {session.id}")
    for name, value in plain(session).items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str, typer.Option(help="Ticket status.")] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """The approval queue, oldest first."""
    with opened(url, schema, table_prefix) as cp:
        page = cp.list_tickets(status=status, limit=limit)
    if as_json:
        emit_json_list(page.items)
        return
    table = Table("ticket", "session", "action", "resource", "requested", "expires")
    for t in page.items:
        table.add_row(
            str(t.id),
            str(t.session_id),
            t.action,
            t.resource or "",
            t.requested_at.isoformat(timespec="seconds"),
            "" if t.expires_at is None else t.expires_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@approvals_app.command("approve")
def approvals_approve(
    ticket_id: str,
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded in the audit trail).")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    session_scope: Annotated[
        bool, typer.Option("--session-scope", help="Cover this action for the whole session.")
    ] = False,
    max_count: Annotated[int | None, typer.Option(help="Session scope: at most this many.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Approve a pending ticket (exit 1 if someone decided first or it expired)."""
    limits = {"max_count": max_count} if max_count is not None else None
    with opened(url, schema, table_prefix) as cp:
        ticket = cp.approve(
            ticket_id,
            by,
            scope="session" if session_scope else "once",
            scope_limits=limits,
            reason=reason,
        )
    if as_json:
        emit_json(ticket)
        return
    console.print(f"approved {ticket.id} ({ticket.scope}) by {ticket.decided_by}")


@approvals_app.command("deny")
def approvals_deny(
    ticket_id: str,
    by: Annotated[str, typer.Option("--by", help="Who denies.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Deny a pending ticket; final."""
    with opened(url, schema, table_prefix) as cp:
        ticket = cp.deny(ticket_id, by, reason)
    if as_json:
        emit_json(ticket)
        return
    console.print(f"denied {ticket.id} by {ticket.decided_by}")
