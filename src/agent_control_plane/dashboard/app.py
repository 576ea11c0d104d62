"""``create_dashboard(control_plane)``: the operator pages as an ASGI app (the gateway mounts
it under ``/ui``)."""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.dashboard import actions, auth, pages, views
from agent_control_plane.dashboard.headers import SecurityHeaders
from agent_control_plane.dashboard.throttle import SignInThrottle
from agent_control_plane.errors import ControlPlaneError
from agent_control_plane.gateway import problems
from agent_control_plane.operations.sign_ins import DEFAULT_LIFETIME

# Set it to the same value on every worker, or each worker signs its own cookies.
SECRET_VARIABLE = "ACP_DASHBOARD_SECRET"
SESSION_COOKIE = "acp_dashboard"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def create_dashboard(
    control_plane: ControlPlane,
    *,
    secret: str | None = None,
    https_only: bool = False,
    path: str = "/ui",
    sign_in_lifetime: timedelta = DEFAULT_LIFETIME,
    throttle: SignInThrottle | None = None,
) -> FastAPI:
    """The dashboard over ``control_plane``. Cookies are signed with ``secret`` (default:
    ``ACP_DASHBOARD_SECRET``, else a random secret for this app only); they are ``Secure``
    on every request that came over HTTPS, and always with ``https_only``; ``path`` is
    where the app is mounted (the cookie's path). A sign-in lasts ``sign_in_lifetime``
    unless signed out first; failed sign-ins are throttled by ``throttle``."""
    secret = secret or os.environ.get(SECRET_VARIABLE) or secrets.token_urlsafe(32)
    app = _Dashboard(title="agent-control-plane dashboard", openapi_url=None, docs_url=None)
    app.secure_cookies = https_only
    app.state.control_plane = control_plane
    app.state.sign_in_lifetime = sign_in_lifetime
    app.state.throttle = throttle or SignInThrottle()
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals["url_for"] = _url_for
    templates.env.filters["money"] = views.money
    app.state.templates = templates
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=int(sign_in_lifetime.total_seconds()),
        path=path,
        same_site="lax",
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.add_exception_handler(auth.LoginRequired, _to_login)
    app.add_exception_handler(auth.CsrfRejected, _csrf_rejected)
    app.add_exception_handler(RequestValidationError, _invalid_form)
    for error in (ControlPlaneError, SQLAlchemyError, Exception):
        app.add_exception_handler(error, _refused)
    return app


class _Dashboard(FastAPI):
    """The dashboard app, with the security headers outside everything else: added as a
    middleware they would sit inside Starlette's error layer, and the page of an unexpected
    error (a 500) would go out without them."""

    secure_cookies = False

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), secure_cookies=self.secure_cookies)


@jinja2.pass_context
def _url_for(context: dict[str, Any], name: str, /, **params: object) -> str:
    return auth.link(context["request"], name, **params)


async def _to_login(request: Request, _exc: Exception) -> Response:
    if request.url.path.endswith(".json"):
        return JSONResponse({"detail": "sign in again"}, status_code=401)
    return RedirectResponse(auth.link(request, "login_page"), status_code=303)


async def _csrf_rejected(request: Request, _exc: Exception) -> Response:
    return pages.error_page(
        request,
        403,
        "Request refused",
        "The form's security token is missing or wrong: reload the page and try again.",
    )


async def _invalid_form(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(
        f"{error['loc'][-1]}: {error['msg']}" for error in exc.errors() if error.get("loc")
    )
    return pages.error_page(request, 422, "Invalid form", detail or "the form was not valid")


async def _refused(request: Request, exc: Exception) -> Response:
    """Errors get the gateway's status, title and detail (a database error's detail is never
    shown), on an HTML page."""
    response = problems.error_response(exc)
    body: dict[str, Any] = json.loads(bytes(response.body))
    return pages.error_page(request, response.status_code, body["title"], body["detail"])
