"""Operator commands: sessions and approvals, over the public API."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    JsonOption,
    Target,
    console,
    emit_json,
    emit_json_list,
    opened,
    plain,
    print_table,
    targeted,
)

sessions_app = typer.Typer(help="List and inspect sessions.", no_args_is_help=True)
approvals_app = typer.Typer(help="The approval queue: list, approve, deny.", no_args_is_help=True)


@sessions_app.command("list")
@targeted
def sessions_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Sessions, newest first."""
    with opened(database) as cp:
        page = cp.list_sessions(status=status, agent_id=agent, tenant=tenant, limit=limit)
    if as_json:
        emit_json_list(page.items)
        return
    print_table(
        ("session", "agent", "tenant", "status", "actions", "cost"),
        (
            (
                s.id,
                s.agent_id,
                s.tenant,
                s.status,
                f"{s.actions_used}/{s.max_actions}",
                f"${s.cost_used:.4f}/${s.max_cost:.2f}",
            )
            for s in page.items
        ),
    )


@sessions_app.command("show")
@targeted
def sessions_show(
    session_id: str,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """One session's state."""
    with opened(database) as cp:
        session = cp.get_session(session_id)
    if as_json:
        emit_json(session)
        return
    print_table(
        ("field", "value"),
        plain(session).items(),
        title=f"session {session.id}",
        show_header=False,
    )


@approvals_app.command("list")
@targeted
def approvals_list(
    status: Annotated[str, typer.Option(help="Ticket status.")] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """The approval queue, oldest first."""
    with opened(database) as cp:
        page = cp.list_tickets(status=status, limit=limit)
    if as_json:
        emit_json_list(page.items)
        return
    print_table(
        ("ticket", "session", "action", "resource", "requested", "expires"),
        (
            (t.id, t.session_id, t.action, t.resource, t.requested_at, t.expires_at)
            for t in page.items
        ),
    )


@approvals_app.command("approve")
@targeted
def approvals_approve(
    ticket_id: str,
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded in the audit trail).")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    session_scope: Annotated[
        bool, typer.Option("--session-scope", help="Cover this action for the whole session.")
    ] = False,
    max_count: Annotated[int | None, typer.Option(help="Session scope: at most this many.")] = None,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Approve a pending ticket (exit 1 if someone decided first or it expired)."""
    limits = {"max_count": max_count} if max_count is not None else None
    with opened(database) as cp:
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
@targeted
def approvals_deny(
    ticket_id: str,
    by: Annotated[str, typer.Option("--by", help="Who denies.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Deny a pending ticket; final."""
    with opened(database) as cp:
        ticket = cp.deny(ticket_id, by, reason)
    if as_json:
        emit_json(ticket)
        return
    console.print(f"denied {ticket.id} by {ticket.decided_by}")
