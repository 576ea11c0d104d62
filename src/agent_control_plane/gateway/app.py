"""``create_app(control_plane)``: the REST gateway as an ASGI app a host can mount."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.gateway import auth, limits, problems
from agent_control_plane.gateway.routes import (
    approvals,
    events,
    governing,
    health,
    kill,
    operate,
    sessions,
    tokens,
)

_ROUTERS = (
    health.router,
    sessions.router,
    governing.router,
    approvals.router,
    kill.router,
    events.router,
    tokens.router,
    operate.router,
)


def create_app(
    control_plane: ControlPlane,
    *,
    title: str = "agent-control-plane",
    dashboard: bool = True,
    max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES,
    waits_per_key: int = limits.DEFAULT_WAITS_PER_KEY,
    secure_cookies: bool = False,
) -> FastAPI:
    """The REST gateway over ``control_plane`` (a sync :class:`ControlPlane`: endpoints are
    plain functions run in the server's threadpool). The caller keeps ownership of the
    control plane and closes it. With ``dashboard`` (and the ``dashboard`` extra installed)
    the operator pages are served under ``/ui``.

    A request body is read only once the request shows an API key, and only up to
    ``max_body_bytes`` (413 beyond); each key holds at most ``waits_per_key`` long waits
    (``/approvals/{id}/wait``) at once (429 beyond), and a wait holds no worker thread.
    The dashboard's cookie is ``Secure`` on requests that came over HTTPS, and always with
    ``secure_cookies``."""
    if not isinstance(control_plane, ControlPlane):
        raise TypeError("create_app needs a ControlPlane (the synchronous one)")
    app = FastAPI(title=title, version="1", openapi_url="/openapi.json")
    app.state.control_plane = control_plane
    app.state.wait_slots = limits.WaitSlots(waits_per_key)
    app.state.session_owners = auth.SessionOwners(control_plane)
    app.add_middleware(
        limits.RequestLimits,
        max_body_bytes=max_body_bytes,
        authenticate=control_plane.authenticate_api_key,
        remembered=control_plane.remembered_principal,
    )
    for router in _ROUTERS:
        app.include_router(router)
    problems.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if dashboard:
        _mount_dashboard(app, control_plane, secure_cookies)
    return app


def _mount_dashboard(app: FastAPI, control_plane: ControlPlane, secure_cookies: bool) -> None:
    try:
        from agent_control_plane.dashboard import create_dashboard
    except ImportError:  # pragma: no cover - the dashboard extra is not installed
        return
    dashboard = create_dashboard(control_plane, path="/ui", https_only=secure_cookies)
    app.mount("/ui", dashboard, name="dashboard")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every error documented as application/problem+json."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = problems.Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    problem = {
        "content": {
            problems.PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            statuses = (503,) if path in ("/healthz", "/readyz") else problems.ERROR_STATUSES
            for code in statuses:
                responses[str(code)] = {"description": _DESCRIPTIONS[code], **problem}
    app.openapi_schema = schema
    return schema


_DESCRIPTIONS = {
    400: "Refused",
    401: "Missing, malformed, unknown, revoked or expired API key",
    403: "The key's role, tenant or agents do not allow this",
    404: "Not found (or in another tenant)",
    409: "Conflicts with the current state",
    413: "The request body is larger than the gateway reads",
    422: "Invalid request",
    429: "This key holds as many long waits as it may",
    503: "Database unavailable or schema not current",
}
