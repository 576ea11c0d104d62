"""Every error as ``application/problem+json`` (RFC 9457), mapped once from ACP's hierarchy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from agent_control_plane import errors
from agent_control_plane.operations.agents import AgentNotFoundError
from agent_control_plane.operations.approvals import TicketNotFoundError

log = logging.getLogger("agent_control_plane.gateway")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:agent-control-plane:problem:"


class Problem(BaseModel):
    """An RFC 9457 problem document; ``reason`` is ACP's machine-readable code."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    reason: str


@dataclass(frozen=True, slots=True)
class Mapping:
    status: int
    reason: str
    title: str


# Looked up along the exception's MRO: the most specific class wins.
_MAPPINGS: dict[type[BaseException], Mapping] = {
    errors.AuthenticationError: Mapping(401, "unauthenticated", "Authentication required"),
    errors.PermissionDeniedError: Mapping(403, "forbidden", "Not allowed"),
    errors.NotFoundError: Mapping(404, "not_found", "Not found"),
    AgentNotFoundError: Mapping(404, "agent_not_found", "Agent not found"),
    errors.SessionNotFoundError: Mapping(404, "session_not_found", "Session not found"),
    errors.PolicyNotFoundError: Mapping(404, "policy_not_found", "Policy not found"),
    errors.ApiKeyNotFoundError: Mapping(404, "api_key_not_found", "API key not found"),
    TicketNotFoundError: Mapping(404, "ticket_not_found", "Approval ticket not found"),
    errors.InvalidInputError: Mapping(422, "invalid_input", "Invalid input"),
    errors.PolicyError: Mapping(422, "invalid_policy", "Invalid policy"),
    errors.ConfigurationError: Mapping(422, "invalid_configuration", "Invalid configuration"),
    errors.ModelNotAllowedError: Mapping(422, "model_not_allowed", "Model not allowed"),
    errors.InvalidTransitionError: Mapping(409, "invalid_transition", "Invalid transition"),
    errors.SessionTerminatedError: Mapping(409, "session_terminated", "Session terminated"),
    errors.KilledScopeError: Mapping(409, "killed", "Killed: no new sessions here"),
    errors.IdempotencyConflictError: Mapping(409, "idempotency_conflict", "Idempotency key reused"),
    errors.TokenBudgetExhausted: Mapping(409, "token_budget_exhausted", "Token budget exhausted"),
    errors.TokenBudgetExistsError: Mapping(409, "token_budget_exists", "Token budget exists"),
    # The facade turns every database failure into this family: one problem type, with
    # a subtype for what the caller can do about it.
    errors.GovernanceUnavailableError: Mapping(
        503, "governance_unavailable", "Governance unavailable"
    ),
    errors.GovernanceBusyError: Mapping(503, "governance_busy", "Governance busy"),
    errors.OutcomeUnknownError: Mapping(503, "outcome_unknown", "Outcome unknown"),
    errors.SchemaNotCurrentError: Mapping(503, "schema_not_current", "Schema not current"),
    errors.MigrationError: Mapping(503, "schema_not_current", "Schema not current"),
    errors.ControlPlaneClosedError: Mapping(503, "closed", "Shutting down"),
    errors.ControlPlaneError: Mapping(400, "control_plane_error", "Request refused"),
}

# Database messages can carry SQL, parameters and host names: they stay in the log.
_UNAVAILABLE_DETAILS: dict[type[BaseException], str] = {
    errors.GovernanceUnavailableError: (
        "the database could not be reached or failed; nothing was decided or written"
    ),
    errors.GovernanceBusyError: (
        "the database was too busy (no free connection, or a lock held too long); nothing "
        "was decided or written: retry"
    ),
    errors.OutcomeUnknownError: (
        "the connection failed while the request was committing; whether it committed is "
        "unknown: retry with the idempotency_key given"
    ),
}

# Statuses an operation may answer with besides its success (documented on every operation).
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def problem_response(
    status: int, reason: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": TYPE_PREFIX + reason,
        "title": title,
        "status": status,
        "detail": detail,
        "reason": reason,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="acp"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _mapping(exc: BaseException) -> Mapping | None:
    for cls in type(exc).__mro__:
        if cls in _MAPPINGS:
            return _MAPPINGS[cls]
    return None


def _details(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, errors.AuthenticationError):
        return {"reason": f"auth.{exc.reason}"}
    if isinstance(exc, errors.InvalidInputError):
        return {"field": exc.field}
    if isinstance(exc, errors.PolicyError):
        return {"problems": [{"location": loc, "message": msg} for loc, msg in exc.problems]}
    if isinstance(exc, errors.OutcomeUnknownError) and exc.key is not None:
        return {"idempotency_key": exc.key}
    if isinstance(exc, errors.TokenBudgetExhausted):
        return {
            "budget_id": exc.budget_id,
            "window_start": exc.window_start,
            "limit": exc.limit,
            "usage": exc.usage,
        }
    return {}


def error_response(exc: BaseException) -> JSONResponse:
    mapping = _mapping(exc)
    if mapping is None:
        log.exception("ACP gateway: unexpected error", exc_info=exc)
        return problem_response(
            500, "internal_error", "Internal error", "an unexpected error occurred; see the logs"
        )
    if mapping.status >= 500:
        log.error("ACP gateway: %s: %s", mapping.reason, exc)
    detail = _UNAVAILABLE_DETAILS.get(type(exc), str(exc))
    extra = _details(exc)
    reason = extra.pop("reason", mapping.reason)
    return problem_response(mapping.status, reason, mapping.title, detail, **extra)


async def _on_error(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"location": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
        for error in exc.errors()
    ]
    detail = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
    return problem_response(
        422, "request_invalid", "Invalid request", detail or "invalid request", problems=problems
    )


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    reasons = {404: "route_not_found", 405: "method_not_allowed", 429: "too_many_waits"}
    response = problem_response(
        exc.status_code,
        reasons.get(exc.status_code, f"http_{exc.status_code}"),
        str(exc.detail) if exc.status_code < 500 else "Error",
        str(exc.detail),
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    """Register the problem+json handlers for every error the app can raise."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(errors.ControlPlaneError, _on_error)
    app.add_exception_handler(Exception, _on_error)
