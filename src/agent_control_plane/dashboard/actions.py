"""What an operator does: sign in and out, approve or deny tickets, stop sessions, lift
standing kills.

Every POST here carries the session's CSRF token (``require_csrf`` on the router). The
approver recorded is always the signed-in key's identity, never a form field.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Annotated, Literal

import pydantic
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agent_control_plane.dashboard import auth
from agent_control_plane.dashboard.auth import Plane, Viewer
from agent_control_plane.dashboard.pages import render
from agent_control_plane.dashboard.throttle import SignInThrottle
from agent_control_plane.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from agent_control_plane.gateway.auth import visible_session, visible_ticket
from agent_control_plane.gateway.bodies import Kill, Lift
from agent_control_plane.gateway.routes import kill as gateway_kill
from agent_control_plane.rules import keys
from agent_control_plane.rules.keys import Permission
from agent_control_plane.statuses import KillScope, KillTarget

router = APIRouter(dependencies=[Depends(auth.require_csrf)])

Reason = Annotated[str, Form(max_length=2000)]


def _back(request: Request, name: str, **params: object) -> Response:
    return RedirectResponse(auth.link(request, name, **params), status_code=303)


@router.post("/login", response_class=HTMLResponse, name="login")
def login(request: Request, api_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Sign in with an approver, admin or viewer key; agent keys are refused. Failures are
    throttled per client address and per key id."""
    api_key = api_key.strip()
    subjects = _throttled(request, api_key)
    throttle: SignInThrottle = request.app.state.throttle
    wait = throttle.retry_after(subjects)
    if wait is not None:
        response = render(
            request,
            "login.html",
            None,
            status_code=429,
            error=f"Too many failed sign-ins: try again in {wait} seconds.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        auth.sign_in(request, api_key)
    except AuthenticationError:
        throttle.failed(subjects)
        return render(
            request, "login.html", None, status_code=401, error="That API key was not accepted."
        )
    except PermissionDeniedError as exc:
        throttle.failed(subjects)
        return render(request, "login.html", None, status_code=403, error=f"{exc}.")
    throttle.succeeded(subjects)
    return _back(request, "approvals_page")


def _throttled(request: Request, api_key: str) -> list[str]:
    """Who a sign-in attempt counts against: its client address, and its key id if the
    key is well formed (the secret is never kept)."""
    subjects = [f"client:{request.client.host if request.client else '?'}"]
    with suppress(AuthenticationError):
        subjects.append(f"key:{keys.parse_key(api_key)[0]}")
    return subjects


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    auth.sign_out(request)
    return _back(request, "login_page")


@router.post("/approvals/{ticket_id}/approve", name="approve")
def approve(
    request: Request,
    ticket_id: uuid.UUID,
    plane: Plane,
    principal: Viewer,
    reason: Reason = "",
    scope: Annotated[Literal["once", "session"], Form()] = "once",
) -> Response:
    auth.needs(principal, Permission.APPROVE)
    ticket = visible_ticket(plane, principal, ticket_id)
    plane.approve(ticket_id, principal.identity, scope=scope, reason=reason.strip() or None)
    auth.flash(request, "ok", f"Approved {ticket.action} ({scope}).")
    return _back(request, "approvals_page")


@router.post("/approvals/{ticket_id}/deny", name="deny")
def deny(
    request: Request, ticket_id: uuid.UUID, plane: Plane, principal: Viewer, reason: Reason = ""
) -> Response:
    auth.needs(principal, Permission.APPROVE)
    ticket = visible_ticket(plane, principal, ticket_id)
    if not reason.strip():
        raise InvalidInputError("reason", "say why the request is denied")
    plane.deny(ticket_id, principal.identity, reason.strip())
    auth.flash(request, "ok", f"Denied {ticket.action}.")
    return _back(request, "approvals_page")


@router.get("/kill", response_class=HTMLResponse, name="confirm_kill")
def confirm_kill(
    request: Request,
    plane: Plane,
    principal: Viewer,
    scope: KillTarget,
    target: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Ask before stopping anything: what will stop, and a reason to record."""
    auth.needs(principal, Permission.OPERATE)
    _checked(scope, target)
    session = None
    if scope == "session":
        session = visible_session(plane, principal, uuid.UUID(target))
    return render(
        request, "confirm_kill.html", principal, scope=scope, target=target, session=session
    )


@router.post("/kill", name="kill")
def kill(
    request: Request,
    plane: Plane,
    principal: Viewer,
    scope: Annotated[KillTarget, Form()],
    target: Annotated[str, Form(max_length=200)] = "",
    reason: Reason = "",
) -> Response:
    """Stop sessions with the gateway's kill rules (a tenant key stops only its tenant's)."""
    auth.needs(principal, Permission.OPERATE)
    body = _checked(scope, target, reason)
    stopped = gateway_kill.kill(body, plane, principal).stopped
    what = scope if scope == KillTarget.ALL else f"{scope} {target}"
    auth.flash(request, "ok", f"Kill {what}: stopped {stopped} session(s).")
    if scope == KillTarget.SESSION:
        return _back(request, "session_page", session_id=target)
    return _back(request, "sessions_page")


@router.post("/kill/lift", name="lift_kill")
def lift_kill(
    request: Request,
    plane: Plane,
    principal: Viewer,
    scope: Annotated[KillScope, Form()],
    target: Annotated[str, Form(max_length=200)] = "",
    tenant: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Lift a standing kill with the gateway's rules (a tenant key lifts only its tenant's)."""
    auth.needs(principal, Permission.OPERATE)
    try:
        body = Lift(scope=scope, target=target.strip() or None, tenant=tenant.strip() or None)
    except pydantic.ValidationError as exc:
        raise InvalidInputError("target", f"not a valid target: {target!r}") from exc
    lifted = gateway_kill.lift(body, plane, principal).lifted
    what = scope if scope == KillScope.ALL else f"{scope} {target}"
    auth.flash(request, "ok", f"Lifted the kill of {what}." if lifted else "Nothing to lift.")
    return _back(request, "sessions_page")


def _checked(scope: KillTarget, target: str, reason: str = "") -> Kill:
    try:
        body = Kill(scope=scope, target=target.strip() or None, reason=reason.strip() or None)
        if body.scope == KillTarget.SESSION and body.target is not None:
            uuid.UUID(body.target)
    except (pydantic.ValidationError, ValueError) as exc:
        raise InvalidInputError("target", f"not a valid kill target: {target!r}") from exc
    if (body.scope == KillTarget.ALL) != (body.target is None):
        raise InvalidInputError(
            "target", "give a target for session, agent or tenant, none for all"
        )
    return body
