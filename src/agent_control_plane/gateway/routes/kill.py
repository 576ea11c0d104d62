"""The kill switch: one session, an agent's sessions, a tenant's sessions, or all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.gateway.auth import Operator, Plane, tenant_filter, visible_session
from agent_control_plane.gateway.schemas import Kill, Killed
from agent_control_plane.rules import validation

router = APIRouter(prefix="/v1", tags=["kill switch"])


@router.post("/kill", response_model=Killed)
def kill(body: Kill, plane: Plane, principal: Operator) -> Any:
    """Stop sessions now and say how many were stopped. A tenant key's ``agent`` and
    ``all`` stop only its own tenant's sessions (``all`` is ``tenant`` of its tenant), and
    ``tenant`` accepts only its own tenant (403 otherwise)."""
    if (body.scope == "all") != (body.target is None):
        raise InvalidInputError(
            "target", "give a target for session, agent or tenant, none for all"
        )
    if body.scope == "session":
        session_id = validation.session_id(body.target)
        visible_session(plane, principal, session_id)
        stopped = plane.kill_session(session_id, reason=body.reason)
    elif body.scope == "agent":
        assert body.target is not None
        stopped = plane.kill_agent(body.target, reason=body.reason, tenant=principal.tenant)
    elif body.scope == "tenant":
        tenant = tenant_filter(principal, body.target)
        assert tenant is not None
        stopped = plane.kill_tenant(tenant, reason=body.reason)
    elif principal.tenant is not None:
        stopped = plane.kill_tenant(principal.tenant, reason=body.reason)
    else:
        stopped = plane.kill_all(reason=body.reason)
    return Killed(scope=body.scope, target=body.target, stopped=stopped)
