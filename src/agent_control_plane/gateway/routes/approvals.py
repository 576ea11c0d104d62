"""The approval queue: list, read, approve, deny and wait."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agent_control_plane.gateway.auth import (
    Approver,
    OwnReader,
    Plane,
    Reader,
    tenant_filter,
    visible_session,
    visible_ticket,
)
from agent_control_plane.gateway.bodies import Approve, Deny, PageOf, TicketView
from agent_control_plane.gateway.limits import WaitSlots
from agent_control_plane.rules import waiting

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

MAX_WAIT_SECONDS = 30.0


@router.get("", response_model=PageOf[TicketView])
def list_tickets(
    plane: Plane,
    principal: Reader,
    status: Annotated[
        str | None, Query(pattern=r"^(pending|approved|denied|expired|consumed)$")
    ] = None,
    session_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    """Tickets oldest first (keyset pages); a tenant key sees its tenant's only."""
    if session_id is not None:
        visible_session(plane, principal, session_id)
    return plane.list_tickets(
        status=status,
        session_id=session_id,
        tenant=tenant_filter(principal, None),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{ticket_id}", response_model=TicketView)
def get_ticket(ticket_id: uuid.UUID, plane: Plane, principal: OwnReader) -> Any:
    return visible_ticket(plane, principal, ticket_id)


@router.post("/{ticket_id}/approve", response_model=TicketView)
def approve(ticket_id: uuid.UUID, body: Approve, plane: Plane, principal: Approver) -> Any:
    """Approve a pending ticket; the approver recorded is the API key, never the body."""
    visible_ticket(plane, principal, ticket_id)
    limits = None
    if body.scope_limits is not None:
        limits = body.scope_limits.model_dump(exclude_none=True)
    return plane.approve(
        ticket_id, principal.identity, scope=body.scope, scope_limits=limits, reason=body.reason
    )


@router.post("/{ticket_id}/deny", response_model=TicketView)
def deny(ticket_id: uuid.UUID, body: Deny, plane: Plane, principal: Approver) -> Any:
    """Deny a pending ticket (final); the approver recorded is the API key."""
    visible_ticket(plane, principal, ticket_id)
    return plane.deny(ticket_id, principal.identity, body.reason)


@router.get("/{ticket_id}/wait", response_model=TicketView)
async def wait(
    ticket_id: uuid.UUID,
    request: Request,
    plane: Plane,
    principal: OwnReader,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 10.0,
) -> Any:
    """Wait up to ``timeout`` seconds (at most 30) for a decision; return the ticket either way.

    The wait holds no worker thread (only each short read takes one), and one API key holds
    a bounded number of waits at once (429 beyond)."""
    slots: WaitSlots = request.app.state.wait_slots
    with slots.hold(principal.key_id):
        await run_in_threadpool(visible_ticket, plane, principal, ticket_id)
        for delay in waiting.delays(timeout):
            ticket = await run_in_threadpool(plane.get_ticket, ticket_id)
            if not ticket.pending or delay is None:
                return ticket
            await anyio.sleep(delay)
    raise AssertionError("unreachable: waiting.delays ends with None")
