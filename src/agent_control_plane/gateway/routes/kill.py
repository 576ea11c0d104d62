"""The kill switch: one session, an agent's sessions, a tenant's sessions, or all; and the
standing kills that bar new sessions until they are lifted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.gateway.auth import (
    Operator,
    Plane,
    Reader,
    tenant_filter,
    visible_session,
)
from agent_control_plane.gateway.bodies import Kill, Killed, Lift, Lifted, StandingKillView
from agent_control_plane.models import Principal
from agent_control_plane.rules import validation
from agent_control_plane.statuses import KillScope, KillTarget

router = APIRouter(prefix="/v1", tags=["kill switch"])


def _standing_scope(
    principal: Principal, scope: str, target: str | None, tenant: str | None = None
) -> dict[str, str | None]:
    """The ``agent_id``/``tenant`` a kill or lift of ``scope`` names, held to a tenant key's
    own tenant: its ``all`` is its tenant, its ``agent`` the agent within its tenant, and
    another tenant is a 403."""
    if scope == KillScope.AGENT:
        return {"agent_id": target, "tenant": tenant_filter(principal, tenant)}
    if scope == KillScope.TENANT:
        return {"tenant": tenant_filter(principal, target)}
    return {"tenant": principal.tenant}


@router.post("/kill", response_model=Killed)
def kill(body: Kill, plane: Plane, principal: Operator) -> Any:
    """Stop sessions now and say how many were stopped; the key is recorded as who did it.
    A tenant key's ``agent`` and ``all`` stop only its own tenant's sessions (``all`` is
    ``tenant`` of its tenant), and ``tenant`` accepts only its own tenant (403 otherwise)."""
    if (body.scope == KillTarget.ALL) != (body.target is None):
        raise InvalidInputError(
            "target", "give a target for session, agent or tenant, none for all"
        )
    by = principal.identity
    if body.scope == KillTarget.SESSION:
        session_id = validation.session_id(body.target)
        visible_session(plane, principal, session_id)
        stopped = plane.kill_session(session_id, reason=body.reason, by=by)
    else:
        named = _standing_scope(principal, body.scope, body.target)
        agent_id, tenant = named.get("agent_id"), named["tenant"]
        if agent_id is not None:
            stopped = plane.kill_agent(agent_id, reason=body.reason, tenant=tenant, by=by)
        elif tenant is not None:
            stopped = plane.kill_tenant(tenant, reason=body.reason, by=by)
        else:
            stopped = plane.kill_all(reason=body.reason, by=by)
    return Killed(scope=body.scope, target=body.target, stopped=stopped)


@router.post("/kill/lift", response_model=Lifted)
def lift(body: Lift, plane: Plane, principal: Operator) -> Any:
    """Lift a standing kill so that sessions may open again in its scope (stopped sessions
    stay stopped). A tenant key lifts only within its tenant, as it kills."""
    if (body.scope == KillScope.ALL) != (body.target is None):
        raise InvalidInputError("target", "give a target for agent or tenant, none for all")
    if body.tenant is not None and body.scope != KillScope.AGENT:
        raise InvalidInputError("tenant", "only an agent's kill names a tenant besides its target")
    named = _standing_scope(principal, body.scope, body.target, body.tenant)
    lifted = plane.lift_kill(**named, by=principal.identity)
    return Lifted(scope=body.scope, target=body.target, lifted=lifted)


@router.get("/kills", response_model=list[StandingKillView])
def standing_kills(plane: Plane, principal: Reader, include_lifted: bool = False) -> Any:
    """Standing kills (and, if asked, lifted ones). A tenant key sees those of its tenant
    and those that name no tenant (which cover it too)."""
    found = plane.list_kills(include_lifted=include_lifted)
    if principal.tenant is None:
        return found
    return [kill for kill in found if kill.tenant in (None, principal.tenant)]
