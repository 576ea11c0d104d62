"""Token budgets, reservations, settlement, usage and reports.

A tenant key's identities belong to its tenant: ``identity.org`` defaults to the tenant and
may not name another, and it sees only budgets whose org is its tenant. An agent key's
identities name one of its agents (``identity.agent`` defaults to the one agent it names).
A reservation is settled or released only by a key that could have made it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from agent_control_plane.errors import NotFoundError
from agent_control_plane.gateway.auth import (
    Actor,
    Operator,
    Plane,
    Reader,
    agent_filter,
    tenant_filter,
    visible_reservation,
    visible_session,
)
from agent_control_plane.gateway.bodies import (
    BudgetStatus,
    BudgetView,
    IdentityBody,
    RecordUsage,
    ReservationView,
    Reserve,
    SetBudget,
    UsageBody,
    UsageRecordView,
)
from agent_control_plane.models import Principal, TokenBudget
from agent_control_plane.rules.tokens import Identity, TokenUsage

router = APIRouter(prefix="/v1", tags=["tokens"])

GROUPS = r"^(org|team|user|agent|model|day)$"


def _identity(principal: Principal, body: IdentityBody) -> Identity:
    org = tenant_filter(principal, body.org)
    agent = agent_filter(principal, body.agent)
    return Identity(org=org, team=body.team, user=body.user, agent=agent)


def _visible_budgets(plane: Plane, principal: Principal) -> list[TokenBudget]:
    budgets = plane.list_token_budgets()
    if principal.tenant is None:
        return budgets
    return [budget for budget in budgets if budget.org_id == principal.tenant]


@router.post("/budgets", status_code=status.HTTP_201_CREATED, response_model=BudgetView)
def set_budget(body: SetBudget, plane: Plane, principal: Operator) -> Any:
    """Create a token budget for an identity (any of org, team, user, agent) or a session."""
    scope: Identity | uuid.UUID
    if body.session_id is not None:
        scope = visible_session(plane, principal, body.session_id).id
    else:
        scope = _identity(principal, body.identity or IdentityBody())
    return plane.set_token_budget(
        scope,
        body.period,
        max_tokens=body.max_tokens,
        max_cost_usd=body.max_cost_usd,
        max_requests=body.max_requests,
        allowed_models=body.allowed_models,
        denied_models=body.denied_models,
        soft_limit_ratio=body.soft_limit_ratio,
        timezone=body.timezone,
    )


@router.get("/budgets", response_model=list[BudgetView])
def list_budgets(plane: Plane, principal: Reader) -> Any:
    return _visible_budgets(plane, principal)


@router.get("/budgets/status", response_model=list[BudgetStatus])
def budget_status(plane: Plane, principal: Reader) -> Any:
    """Each budget's current window: used, reserved, limits and remaining."""
    visible = {budget.id for budget in _visible_budgets(plane, principal)}
    return [row for row in plane.token_budget_status() if row["budget"].id in visible]


@router.delete("/budgets/{budget_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_budget(budget_id: uuid.UUID, plane: Plane, principal: Operator) -> Response:
    if principal.tenant is not None and budget_id not in {
        budget.id for budget in _visible_budgets(plane, principal)
    }:
        raise NotFoundError(f"no token budget {budget_id}")
    if not plane.delete_token_budget(budget_id):
        raise NotFoundError(f"no token budget {budget_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/tokens/reservations", status_code=status.HTTP_201_CREATED, response_model=ReservationView
)
def reserve(body: Reserve, plane: Plane, principal: Actor) -> Any:
    """Hold tokens and cost against every matching budget, all or none."""
    if body.session_id is not None:
        visible_session(plane, principal, body.session_id)
    return plane.reserve_tokens(
        _identity(principal, body.identity),
        body.model,
        input_tokens=body.input_tokens,
        max_output_tokens=body.max_output_tokens,
        session_id=body.session_id,
        ttl=timedelta(seconds=body.ttl_seconds),
        idempotency_key=body.idempotency_key,
        action_tier=body.action_tier,
    )


def _usage(body: UsageBody) -> TokenUsage:
    return TokenUsage(
        input_tokens=body.input_tokens,
        output_tokens=body.output_tokens,
        cached_input_tokens=body.cached_input_tokens,
        total_tokens=body.total_tokens,
    )


@router.post("/tokens/reservations/{reservation_id}/settle", response_model=UsageRecordView)
def settle(reservation_id: uuid.UUID, body: UsageBody, plane: Plane, principal: Actor) -> Any:
    """Settle a reservation with what the call really used; the holds are released."""
    visible_reservation(plane, principal, reservation_id)
    return plane.settle(reservation_id, _usage(body))


@router.post("/tokens/reservations/{reservation_id}/release", response_model=ReservationView)
def release(reservation_id: uuid.UUID, plane: Plane, principal: Actor) -> Any:
    visible_reservation(plane, principal, reservation_id)
    return plane.release(reservation_id)


@router.post("/tokens/usage", status_code=status.HTTP_201_CREATED, response_model=UsageRecordView)
def record_usage(body: RecordUsage, plane: Plane, principal: Actor) -> Any:
    """Record usage that was not reserved (it may exceed a budget: it already happened)."""
    if body.session_id is not None:
        visible_session(plane, principal, body.session_id)
    return plane.record_usage(
        _identity(principal, body.identity),
        body.model,
        _usage(body.usage),
        session_id=body.session_id,
        idempotency_key=body.idempotency_key,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@router.get("/tokens/usage", response_model=list[dict[str, Any]])
def token_usage(
    plane: Plane,
    principal: Reader,
    group_by: Annotated[list[Annotated[str, Query(pattern=GROUPS)]] | None, Query()] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> Any:
    """Usage summed per group over [since, until); money as exact decimal strings. A tenant
    key's report is grouped by org and holds only its own org's rows."""
    groups = list(dict.fromkeys(group_by or ["model"]))
    if principal.tenant is not None and "org" not in groups:
        groups.insert(0, "org")
    rows = plane.token_usage(group_by=groups, since=since, until=until)
    if principal.tenant is not None:
        rows = [row for row in rows if row.get("org") == principal.tenant]
    return [{key: _plain(value) for key, value in row.as_dict().items()} for row in rows]
