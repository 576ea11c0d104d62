"""Who is calling: the API key from ``Authorization: Bearer`` or ``X-API-Key``, its role
and tenant; and the checks that confine each request to them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.errors import (
    PermissionDeniedError,
    SessionNotFoundError,
)
from agent_control_plane.models import Principal, Session, Ticket
from agent_control_plane.operations.approvals import TicketNotFoundError
from agent_control_plane.rules.keys import Permission

_bearer = HTTPBearer(auto_error=False, description="An ACP API key: acp_<key_id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An ACP API key")


def control_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control_plane
    return plane


Plane = Annotated[ControlPlane, Depends(control_plane)]


def authenticated(
    plane: Plane,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """The caller's principal; a missing, malformed, unknown or revoked key is a 401."""
    raw = bearer.credentials if bearer is not None else header_key
    return plane.authenticate_api_key(raw)


def require(permission: Permission) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
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


def visible_session(plane: ControlPlane, principal: Principal, session_id: uuid.UUID) -> Session:
    """The session, if the key's tenant may see it; another tenant's session is a 404."""
    session = plane.get_session(session_id)
    if not principal.sees(session.tenant):
        raise SessionNotFoundError(f"no session {session_id}")
    return session


def visible_ticket(plane: ControlPlane, principal: Principal, ticket_id: uuid.UUID) -> Ticket:
    ticket = plane.get_ticket(ticket_id)
    if not principal.sees(plane.get_session(ticket.session_id).tenant):
        raise TicketNotFoundError(f"no approval ticket {ticket_id}")
    return ticket


def tenant_filter(principal: Principal, requested: str | None) -> str | None:
    """The tenant a listing is confined to: the key's own, whatever was asked for."""
    if principal.tenant is None:
        return requested
    if requested not in (None, principal.tenant):
        raise PermissionDeniedError(
            f"this API key is confined to tenant {principal.tenant!r}, not {requested!r}"
        )
    return principal.tenant
