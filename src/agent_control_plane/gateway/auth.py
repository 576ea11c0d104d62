"""Who is calling: the API key from ``Authorization: Bearer`` or ``X-API-Key``, its role,
tenant and (for an agent key) agents; and the checks that confine each request to them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.errors import (
    NotFoundError,
    PermissionDeniedError,
    SessionNotFoundError,
)
from agent_control_plane.gateway import limits
from agent_control_plane.memory import DEFAULT_ENTRIES, Bounded
from agent_control_plane.models import Principal, Reservation, Session, Ticket
from agent_control_plane.operations.approvals import TicketNotFoundError
from agent_control_plane.operations.tokens import ReservationNotFoundError
from agent_control_plane.rules import keys
from agent_control_plane.rules.keys import Access, Permission, Role

_bearer = HTTPBearer(auto_error=False, description="An ACP API key: acp_<key_id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An ACP API key")


# The dependencies below do no I/O of their own, so they are ``async def``: FastAPI runs
# a plain ``def`` dependency in its threadpool, one thread hop each, which cost a governed
# request more than the decision itself.


async def control_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control_plane
    return plane


Plane = Annotated[ControlPlane, Depends(control_plane)]


async def authenticated(
    request: Request,
    plane: Plane,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """The caller's principal; a missing, malformed, unknown, revoked or expired key is a 401.
    A request with a body was authenticated before its body was read (limits.py)."""
    principal = getattr(request.state, limits.PRINCIPAL, None)
    if isinstance(principal, Principal):
        return principal
    raw = bearer.credentials if bearer is not None else header_key
    return await limits.principal_of(raw, plane.authenticate_api_key, plane.remembered_principal)


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if not principal.can(permission):
            raise PermissionDeniedError(
                f"an API key with role {principal.role!r} may not {permission.value} here"
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
OwnReader = Annotated[Principal, Depends(require(Permission.READ_OWN))]
Actor = Annotated[Principal, Depends(require(Permission.ACT))]
Approver = Annotated[Principal, Depends(require(Permission.APPROVE))]
Operator = Annotated[Principal, Depends(require(Permission.OPERATE))]


def confine(
    principal: Principal, tenant: str | None, agent_id: str | None, missing: NotFoundError
) -> None:
    """Hold the key to what it may touch: another tenant's record is ``missing`` (a 404:
    the key cannot tell it exists), another agent's is a 403 for an agent key."""
    access = principal.access(tenant, agent_id)
    if access is Access.OTHER_TENANT:
        raise missing
    if access is Access.OTHER_AGENT:
        raise PermissionDeniedError(
            f"this API key acts only as {_agents(principal)}, not as "
            + ("no agent" if agent_id is None else f"agent {agent_id!r}")
        )


def _agents(principal: Principal) -> str:
    return ", ".join(repr(agent) for agent in principal.agents or ()) or "no agent"


def visible_session(plane: ControlPlane, principal: Principal, session_id: uuid.UUID) -> Session:
    """The session, if the key may touch it: another tenant's is a 404, another agent's a
    403 for an agent key."""
    session = plane.get_session(session_id)
    confine(
        principal,
        session.tenant,
        session.agent_id,
        SessionNotFoundError(f"no session {session_id}"),
    )
    return session


class SessionOwners:
    """Each session's tenant and agent, read once: they never change, so a key is held to a
    session it names without reading the session on every request (bounded, least recently
    used forgotten first, like every cache ACP keeps)."""

    def __init__(self, plane: ControlPlane, entries: int = DEFAULT_ENTRIES) -> None:
        self._plane = plane
        self._owners: Bounded[uuid.UUID, tuple[str | None, str]] = Bounded(entries)

    def confine(self, principal: Principal, session_id: uuid.UUID) -> None:
        """Refuse unless the key may touch the session, as :func:`visible_session` does
        (reading the session the first time only)."""
        owner = self._owners.get(session_id)
        if owner is None:
            session = self._plane.get_session(session_id)
            owner = (session.tenant, session.agent_id)
            self._owners[session_id] = owner
        confine(principal, *owner, SessionNotFoundError(f"no session {session_id}"))


async def session_owners(request: Request) -> SessionOwners:
    owners: SessionOwners = request.app.state.session_owners
    return owners


Owners = Annotated[SessionOwners, Depends(session_owners)]


def visible_ticket(plane: ControlPlane, principal: Principal, ticket_id: uuid.UUID) -> Ticket:
    ticket = plane.get_ticket(ticket_id)
    session = plane.get_session(ticket.session_id)
    missing = TicketNotFoundError(f"no approval ticket {ticket_id}")
    confine(principal, session.tenant, session.agent_id, missing)
    return ticket


def visible_reservation(
    plane: ControlPlane, principal: Principal, reservation_id: uuid.UUID
) -> Reservation:
    """The reservation, if the key may touch it: its identity's org is its tenant, its
    identity's agent one of an agent key's agents."""
    reservation = plane.get_reservation(reservation_id)
    missing = ReservationNotFoundError(f"no token reservation {reservation_id}")
    confine(principal, reservation.org_id, reservation.agent_id, missing)
    return reservation


def acting_agent(principal: Principal, agent_id: str) -> str:
    """``agent_id``, if the key may act as it (a 403 otherwise)."""
    if not principal.acts_as(agent_id):
        raise PermissionDeniedError(
            f"this API key acts only as {_agents(principal)}, not as agent {agent_id!r}"
        )
    return agent_id


def agent_filter(principal: Principal, requested: str | None) -> str | None:
    """The agent a token identity names: for an agent key, one of its own (by default the
    one agent it names), never none."""
    if principal.role != Role.AGENT:
        return requested
    agent = requested if requested is not None else keys.sole_agent(principal.agents)
    if agent is None:
        raise PermissionDeniedError(
            "an agent key spends tokens as one of its agents: name it in identity.agent"
        )
    return acting_agent(principal, agent)


def tenant_filter(principal: Principal, requested: str | None) -> str | None:
    """The tenant a listing is confined to: the key's own, whatever was asked for."""
    if principal.tenant is None:
        return requested
    if requested not in (None, principal.tenant):
        raise PermissionDeniedError(
            f"this API key is confined to tenant {principal.tenant!r}, not {requested!r}"
        )
    return principal.tenant
