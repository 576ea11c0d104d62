"""Sessions: open, read, list, lifecycle changes and heartbeat."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from agent_control_plane.errors import PermissionDeniedError
from agent_control_plane.gateway.auth import (
    Actor,
    Operator,
    OwnReader,
    Plane,
    Reader,
    acting_agent,
    tenant_filter,
    visible_session,
)
from agent_control_plane.gateway.bodies import Change, OpenSession, PageOf, SessionView, Text
from agent_control_plane.rules.keys import Role

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=500)]
SessionStatus = Annotated[str | None, Query(pattern=r"^(created|active|paused|completed|aborted)$")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionView)
def open_session(body: OpenSession, plane: Plane, principal: Actor) -> Any:
    """Open a session. A tenant key opens it in its own tenant; an agent key opens it only
    for one of its agents, and must name a stored policy by id (it cannot write its own
    policy) whose ``limits`` cap both budgets (so an agent cannot grant itself a budget)."""
    tenant = tenant_filter(principal, body.tenant)
    acting_agent(principal, body.agent_id)
    if principal.role == Role.AGENT:
        if not isinstance(body.policy, uuid.UUID):
            raise PermissionDeniedError("an agent key must name a stored policy by its id")
        if not plane.get_policy(body.policy).document.limits.complete:
            raise PermissionDeniedError(
                "an agent key may open sessions only under a policy whose limits set both "
                "max_cost and max_actions: the budgets it may ask for"
            )
    return plane.open_session(
        body.name,
        agent_id=body.agent_id,
        tenant=tenant,
        policy=body.policy,
        max_cost=body.max_cost,
        max_actions=body.max_actions,
        expires_at=body.expires_at,
        metadata=body.metadata,
        idempotency_key=body.idempotency_key,
    )


@router.get("", response_model=PageOf[SessionView])
def list_sessions(
    plane: Plane,
    principal: Reader,
    status: SessionStatus = None,
    agent_id: Annotated[Text | None, Query()] = None,
    tenant: Annotated[Text | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Any:
    """Sessions newest first (keyset pages: pass ``next_cursor`` back as ``cursor``)."""
    return plane.list_sessions(
        status=status,
        agent_id=agent_id,
        tenant=tenant_filter(principal, tenant),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{session_id}", response_model=SessionView)
def get_session(session_id: uuid.UUID, plane: Plane, principal: OwnReader) -> Any:
    return visible_session(plane, principal, session_id)


@router.post("/{session_id}/pause", response_model=SessionView)
def pause_session(session_id: uuid.UUID, body: Change, plane: Plane, principal: Operator) -> Any:
    visible_session(plane, principal, session_id)
    return plane.pause_session(session_id, body.reason)


@router.post("/{session_id}/resume", response_model=SessionView)
def resume_session(session_id: uuid.UUID, body: Change, plane: Plane, principal: Operator) -> Any:
    visible_session(plane, principal, session_id)
    return plane.resume_session(session_id, body.reason)


@router.post("/{session_id}/complete", response_model=SessionView)
def complete_session(session_id: uuid.UUID, body: Change, plane: Plane, principal: Actor) -> Any:
    visible_session(plane, principal, session_id)
    return plane.complete_session(session_id, body.reason)


@router.post("/{session_id}/heartbeat", response_model=SessionView)
def heartbeat(session_id: uuid.UUID, plane: Plane, principal: Actor) -> Any:
    """Record that the agent is alive; ``killed`` in the answer tells it to stop."""
    visible_session(plane, principal, session_id)
    return plane.heartbeat(session_id)
