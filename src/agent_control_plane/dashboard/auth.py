"""Who is signed in: the API key behind the session cookie, and the CSRF token of the session.

The signed cookie (Starlette's ``SessionMiddleware``) holds only the sign-in's random token
and the CSRF token, never the key's secret. The server keeps each sign-in (its token's
hash): each request asks it again, so signing out ends the sign-in for every copy of the
cookie, it ends by itself at its expiry, and a revoked or expired key's ends at its next
click.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    PermissionDeniedError,
)
from agent_control_plane.models import Principal
from agent_control_plane.rules.keys import Permission, Role

SIGN_IN = "sign_in"
CSRF = "csrf"
FLASH = "flash"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No live API key behind this request's session: go to the login page."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token."""


def control_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control_plane
    return plane


def link(request: Request, name: str, /, **params: object) -> str:
    """The path of the dashboard route ``name``, under wherever the dashboard is mounted
    (``request.url_for`` would look the name up in the outermost app)."""
    path = request.app.url_path_for(name, **{key: str(value) for key, value in params.items()})
    return f"{request.scope.get('root_path', '')}{path}"


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF] = token
    return token


async def require_csrf(request: Request) -> None:
    """Refuse a POST whose form does not carry the session's CSRF token."""
    if request.method != "POST":
        return
    expected = request.session.get(CSRF)
    submitted = (await request.form()).get(CSRF_FIELD)
    if not (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise CsrfRejected


def sign_in(request: Request, api_key: str) -> Principal:
    """Sign in with ``api_key`` and start a fresh session for it (new CSRF token: no
    fixation). AuthenticationError for a key that does not work, PermissionDeniedError for
    an agent key."""
    plane = control_plane(request)
    started = plane.sign_in(api_key, lifetime=request.app.state.sign_in_lifetime)
    if started.principal.role == Role.AGENT:
        plane.sign_out(started.token)
        raise PermissionDeniedError("agent keys cannot sign in to the dashboard")
    request.session.clear()
    request.session[SIGN_IN] = started.token
    request.session[CSRF] = secrets.token_urlsafe(32)
    return started.principal


def sign_out(request: Request) -> None:
    """End the session's sign-in on the server, then forget the cookie."""
    token = request.session.get(SIGN_IN)
    if isinstance(token, str):
        control_plane(request).sign_out(token)
    request.session.clear()


def signed_in(request: Request) -> Principal:
    """The principal of the session's sign-in, if it is still live and its key may read."""
    token = request.session.get(SIGN_IN)
    if not isinstance(token, str):
        raise LoginRequired
    try:
        principal = control_plane(request).signed_in(token)
    except (ApiKeyNotFoundError, AuthenticationError):
        principal = None
    if principal is None or principal.role == Role.AGENT:
        request.session.clear()
        raise LoginRequired
    return principal


def flash(request: Request, kind: str, text: str) -> None:
    """A message shown once on the next page (``kind``: ok or error)."""
    messages = list(request.session.get(FLASH, []))
    messages.append([kind, text])
    request.session[FLASH] = messages[-5:]


def needs(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise PermissionDeniedError(
            f"an API key with role {principal.role!r} may not {permission.value} here"
        )


Plane = Annotated[ControlPlane, Depends(control_plane)]
Viewer = Annotated[Principal, Depends(signed_in)]
