"""The gateway's request and response bodies (pydantic): what /v1 reads and writes, and
so its OpenAPI document (the database's tables are schema/).

Money is exact: requests take a decimal string or an integer, responses give strings.
A JSON ``true`` or ``false`` is never a number: money, counts and scores refuse it
(Python counts ``True`` as 1, so lax validation would charge $1 for ``"cost": true``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from agent_control_plane.rules.routing import Outcome
from agent_control_plane.statuses import (
    KillScope,
    KillTarget,
    OutcomeStatus,
    ReservationStatus,
    SessionStatus,
    TicketStatus,
)

T = TypeVar("T")

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")]
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00-\x1f]*$")]
Money = Annotated[Decimal | StrictInt, Field(ge=0, description="USD, up to 9 decimal places")]
Count = Annotated[int, Field(ge=0, le=2**62, strict=True)]
UnitInterval = Annotated[float, Field(ge=0, le=1, strict=True)]
Document = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOf(View, Generic[T]):
    items: list[T]
    next_cursor: str | None


# --- sessions -------------------------------------------------------------------------------


class OpenSession(Body):
    name: Text | None = None
    agent_id: Text
    tenant: Text | None = Field(None, description="Default (and only choice): the key's tenant")
    policy: uuid.UUID | Document = Field(
        description="A stored policy id, or a policy document (not for agent keys)"
    )
    max_cost: Money
    max_actions: Count
    expires_at: AwareDatetime | None = None
    metadata: Document | None = None
    idempotency_key: Text | None = None


class SessionView(View):
    id: uuid.UUID
    name: str | None
    agent_id: str
    tenant: str | None
    policy_id: uuid.UUID
    status: SessionStatus
    max_cost: Decimal
    cost_used: Decimal
    max_actions: int
    actions_used: int
    remaining_cost: Decimal
    remaining_actions: int
    killed: bool
    expires_at: datetime | None
    metadata: Document | None
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class Change(Body):
    reason: Reason | None = None


# --- govern and outcomes ----------------------------------------------------------------------


class Govern(Body):
    action: Text
    resource: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    args: Document | None = None
    cost: Money = 0
    weight: UnitInterval | None = None
    score: UnitInterval | None = None
    idempotency_key: Text | None = None


class DecisionView(View):
    outcome: Outcome
    allowed: bool
    reason: str
    session_id: uuid.UUID
    action: str
    event_seq: int
    cost: Decimal
    charged: bool
    dry_run: bool
    guidance: str | None
    remaining_cost: Decimal
    remaining_actions: int
    policy_id: uuid.UUID
    decided_at: AwareDatetime
    idempotency_key: str | None
    ticket_id: uuid.UUID | None


class DecisionRef(Body):
    """The decision as ``govern`` returned it (extra fields such as ``allowed`` are ignored)."""

    model_config = ConfigDict(extra="ignore")

    outcome: Outcome
    reason: str
    session_id: uuid.UUID
    action: str
    event_seq: Count
    cost: Money
    charged: StrictBool
    dry_run: StrictBool
    guidance: str | None = None
    remaining_cost: Money
    remaining_actions: Count
    policy_id: uuid.UUID
    decided_at: AwareDatetime
    idempotency_key: str | None = None
    ticket_id: uuid.UUID | None = None


class RecordOutcome(Body):
    decision: DecisionRef
    status: OutcomeStatus
    actual_cost: Money | None = None
    result: Document | None = None


class EventView(View):
    id: int
    session_id: uuid.UUID
    seq: int
    kind: str
    action: str | None
    outcome: str | None
    reason: str | None
    cost: Decimal | None
    payload: Any
    created_at: datetime
    prev_hash: str
    hash: str


class Emit(Body):
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
    payload: Document | None = None


# --- approvals --------------------------------------------------------------------------------


class TicketView(View):
    id: uuid.UUID
    session_id: uuid.UUID
    proposal_id: uuid.UUID | None
    policy_id: uuid.UUID
    action: str
    resource: str | None
    args_digest: str
    status: TicketStatus
    pending: bool
    scope: str | None
    scope_resources: list[str] | None
    scope_max_cost: Decimal | None
    scope_max_count: int | None
    scope_used_cost: Decimal
    scope_used_count: int
    scope_expires_at: datetime | None
    requested_at: datetime
    expires_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    consumed_at: datetime | None


class ScopeLimits(Body):
    resources: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = None
    max_cost: Money | None = None
    max_count: Count | None = None
    expires_at: AwareDatetime | None = None


class Approve(Body):
    scope: Literal["once", "session"] = "once"
    scope_limits: ScopeLimits | None = None
    reason: Reason | None = None


class Deny(Body):
    reason: Reason


# --- kill switch ------------------------------------------------------------------------------


class Kill(Body):
    scope: KillTarget
    target: Text | None = Field(None, description="Session id, agent id or tenant; none for all")
    reason: Reason | None = None


class Killed(View):
    scope: str
    target: str | None
    stopped: int


class Lift(Body):
    scope: KillScope
    target: Text | None = Field(None, description="Agent id or tenant; none for all")
    tenant: Text | None = Field(
        None, description="For an agent: the tenant its kill named (a tenant key: its own)"
    )


class Lifted(View):
    scope: str
    target: str | None
    lifted: bool


class StandingKillView(View):
    scope: KillScope
    tenant: str | None
    agent_id: str | None
    active: bool
    reason: str | None
    killed_at: datetime | None
    killed_by: str | None
    lifted_at: datetime | None
    lifted_by: str | None


# --- token budgets ----------------------------------------------------------------------------


class IdentityBody(Body):
    org: Text | None = None
    team: Text | None = None
    user: Text | None = None
    agent: Text | None = None


class SetBudget(Body):
    identity: IdentityBody | None = None
    session_id: uuid.UUID | None = Field(None, description="A session budget instead")
    period: Text
    max_tokens: Count | None = None
    max_cost_usd: Money | None = None
    max_requests: Count | None = None
    allowed_models: list[Text] | None = None
    denied_models: list[Text] | None = None
    soft_limit_ratio: Annotated[Decimal | StrictInt, Field(gt=0, le=1)] | None = None
    timezone: Text = "UTC"


class BudgetView(View):
    id: uuid.UUID
    scope_key: str
    org_id: str | None
    team_id: str | None
    user_id: str | None
    agent_id: str | None
    session_id: uuid.UUID | None
    period: str
    timezone: str
    max_tokens: int | None
    max_cost_usd: Decimal | None
    max_requests: int | None
    allowed_models: list[str] | None
    denied_models: list[str] | None
    soft_limit_ratio: Decimal | None
    created_at: datetime
    updated_at: datetime


class Amounts(View):
    tokens: int | None
    cost_usd: Decimal | None
    requests: int | None


class BudgetStatus(View):
    budget: BudgetView
    window_start: datetime
    used: Amounts
    reserved: Amounts
    limits: Amounts
    remaining: Amounts


class Reserve(Body):
    identity: IdentityBody
    model: Text
    input_tokens: Count
    max_output_tokens: Count
    session_id: uuid.UUID | None = None
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400, strict=True)] = 600
    idempotency_key: Text | None = None
    action_tier: Text | None = None


class UsageBody(Body):
    input_tokens: Count
    output_tokens: Count
    cached_input_tokens: Count = 0
    total_tokens: Count | None = None


class RecordUsage(Body):
    identity: IdentityBody
    model: Text
    usage: UsageBody
    session_id: uuid.UUID | None = None
    idempotency_key: Text | None = None


class ReservationView(View):
    id: uuid.UUID
    model: str
    session_id: uuid.UUID | None
    input_tokens: int
    max_output_tokens: int
    reserved_tokens: int
    reserved_cost: Decimal
    status: ReservationStatus
    expires_at: datetime
    holds: list[list[str]]
    warnings: list[str] = Field(description="Budgets this took past their soft limit")


class UsageRecordView(View):
    id: int
    model: str
    total_tokens: int
    cost_usd: Decimal
    reservation_id: uuid.UUID | None
    warnings: list[str] = Field(description="Budgets this took past their soft limit")


# --- audit, policies, health --------------------------------------------------------------------


class AuditProblemView(View):
    session_id: uuid.UUID
    seq: int
    problem: str
    detail: str


class AuditReportView(View):
    ok: bool
    sessions_checked: int
    events_checked: int
    problems: list[AuditProblemView]


class PolicyView(View):
    id: uuid.UUID
    name: str
    version: int
    digest: str
    document: Document
    created_at: datetime


class Health(View):
    status: str
    revision: list[str] | None = None
