"""govern, outcomes and the agent's own events.

The two calls of every agent step (govern, record an outcome) are coroutines that run their
blocking part in one worker thread: as plain functions, FastAPI would hop to a thread a second
time to check the response. The session's owner is read once (it never changes)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from starlette.concurrency import run_in_threadpool

from agent_control_plane.gateway.auth import Actor, Owners, OwnReader, Plane, visible_session
from agent_control_plane.gateway.bodies import (
    DecisionView,
    Emit,
    EventView,
    Govern,
    RecordOutcome,
)
from agent_control_plane.models import Decision, Event

router = APIRouter(prefix="/v1", tags=["govern"])


@router.post("/sessions/{session_id}/govern", response_model=DecisionView)
async def govern(
    session_id: uuid.UUID, body: Govern, plane: Plane, owners: Owners, principal: Actor
) -> Any:
    """Decide whether the agent may take ``action``: allowed, needs_approval, steer or denied."""

    def decide() -> Decision:
        owners.confine(principal, session_id)
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

    return await run_in_threadpool(decide)


@router.post("/outcomes", status_code=status.HTTP_201_CREATED, response_model=EventView)
async def record_outcome(
    body: RecordOutcome, plane: Plane, owners: Owners, principal: Actor
) -> Any:
    """Record what happened after a decision (send back the decision ``govern`` returned)."""

    def record() -> Event:
        owners.confine(principal, body.decision.session_id)
        decision = Decision.from_json_data(body.decision.model_dump(mode="json"))
        return plane.record_outcome(decision, body.status, body.actual_cost, body.result)

    return await run_in_threadpool(record)


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
