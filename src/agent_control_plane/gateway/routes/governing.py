"""govern, outcomes and the agent's own events."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from agent_control_plane.gateway.auth import Actor, OwnReader, Plane, visible_session
from agent_control_plane.gateway.schemas import (
    DecisionView,
    Emit,
    EventView,
    Govern,
    RecordOutcome,
)
from agent_control_plane.models import Decision

router = APIRouter(prefix="/v1", tags=["govern"])


@router.post("/sessions/{session_id}/govern", response_model=DecisionView)
def govern(session_id: uuid.UUID, body: Govern, plane: Plane, principal: Actor) -> Any:
    """Decide whether the agent may take ``action``: allowed, needs_approval, steer or denied."""
    visible_session(plane, principal, session_id)
    return plane.govern(
        session_id,
        body.action,
        resource=body.resource,
        args=body.args,
        cost=body.cost,
        weight=body.weight,
        score=body.score,
        idempotency_key=body.idempotency_key,
    )


@router.post("/outcomes", status_code=status.HTTP_201_CREATED, response_model=EventView)
def record_outcome(body: RecordOutcome, plane: Plane, principal: Actor) -> Any:
    """Record what happened after a decision (send back the decision ``govern`` returned)."""
    visible_session(plane, principal, body.decision.session_id)
    decision = Decision.from_json_data(body.decision.model_dump(mode="json"))
    return plane.record_outcome(decision, body.status, body.actual_cost, body.result)


@router.post(
    "/sessions/{session_id}/events", status_code=status.HTTP_201_CREATED, response_model=EventView
)
def emit(session_id: uuid.UUID, body: Emit, plane: Plane, principal: Actor) -> Any:
    """Append an event of your own kind to the session's audit trail."""
    visible_session(plane, principal, session_id)
    return plane.emit(session_id, body.kind, body.payload)


@router.get("/sessions/{session_id}/events", response_model=list[EventView])
def session_events(
    session_id: uuid.UUID,
    plane: Plane,
    principal: OwnReader,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """The session's events with seq greater than ``after_seq``, in order."""
    visible_session(plane, principal, session_id)
    return plane.events(session_id, after_seq=after_seq, limit=limit)
