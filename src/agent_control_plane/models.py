"""What the public API returns: plain, immutable values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from agent_control_plane.rules import keys
from agent_control_plane.rules.audit import AuditProblem, EventContent
from agent_control_plane.rules.keys import Permission
from agent_control_plane.rules.maintenance import MaintenanceReport
from agent_control_plane.rules.policy import PolicyDocument
from agent_control_plane.rules.routing import Outcome
from agent_control_plane.statuses import (
    AgentStatus,
    DelegationStatus,
    KillScope,
    ReservationStatus,
    SessionStatus,
    TicketStatus,
)

T = TypeVar("T")

__all__ = [
    "Agent",
    "ApiKey",
    "AuditProblem",
    "AuditReport",
    "Decision",
    "Delegation",
    "Event",
    "IssuedApiKey",
    "MaintenanceReport",
    "Outcome",
    "Page",
    "PolicySnapshot",
    "Principal",
    "Reservation",
    "Session",
    "StandingKill",
    "Ticket",
    "TokenAmounts",
    "TokenBudget",
    "TokenBudgetStatus",
    "TokenLimits",
    "TokenUsageRow",
    "UsageRecord",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to ``govern``: what the agent may do, and why."""

    outcome: Outcome
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
    decided_at: datetime
    idempotency_key: str | None = None
    ticket_id: uuid.UUID | None = None
    # True only for the call that holds the claim on the action (``govern(..., claim=True)``):
    # it alone runs the action. A retry of the same keyed request gets False.
    claimed: bool = False

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    def to_json_data(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "session_id": str(self.session_id),
            "action": self.action,
            "event_seq": self.event_seq,
            "cost": str(self.cost),
            "charged": self.charged,
            "dry_run": self.dry_run,
            "guidance": self.guidance,
            "remaining_cost": str(self.remaining_cost),
            "remaining_actions": self.remaining_actions,
            "policy_id": str(self.policy_id),
            "decided_at": self.decided_at.isoformat(),
            "idempotency_key": self.idempotency_key,
            "ticket_id": None if self.ticket_id is None else str(self.ticket_id),
            "claimed": self.claimed,
        }

    @classmethod
    def from_json_data(cls, data: dict[str, Any]) -> Decision:
        return cls(
            outcome=Outcome(data["outcome"]),
            reason=data["reason"],
            session_id=uuid.UUID(data["session_id"]),
            action=data["action"],
            event_seq=int(data["event_seq"]),
            cost=Decimal(data["cost"]),
            charged=bool(data["charged"]),
            dry_run=bool(data["dry_run"]),
            guidance=data["guidance"],
            remaining_cost=Decimal(data["remaining_cost"]),
            remaining_actions=int(data["remaining_actions"]),
            policy_id=uuid.UUID(data["policy_id"]),
            decided_at=datetime.fromisoformat(data["decided_at"]),
            idempotency_key=data.get("idempotency_key"),
            ticket_id=uuid.UUID(data["ticket_id"]) if data.get("ticket_id") else None,
            claimed=bool(data.get("claimed", False)),
        )


@dataclass(frozen=True, slots=True)
class Session:
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
    expires_at: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None

    @property
    def remaining_cost(self) -> Decimal:
        return max(self.max_cost - self.cost_used, Decimal(0))

    @property
    def remaining_actions(self) -> int:
        return max(self.max_actions - self.actions_used, 0)

    @property
    def killed(self) -> bool:
        return self.status == SessionStatus.ABORTED


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(EventContent):
    """One audit event: what its hash covers, plus where it sits in the chain."""

    id: int
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing; pass ``next_cursor`` to get the next."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    id: uuid.UUID
    name: str
    version: int
    digest: str
    document: PolicyDocument
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What ``verify_audit`` found; ``assurance`` says what it could detect, against whom."""

    ok: bool
    sessions_checked: int
    events_checked: int
    problems: list[AuditProblem] = field(default_factory=list)
    assurance: str = ""
    # The signed checkpoint the trail was checked against, if any.
    checkpoint_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request for a person's approval, bound to one proposed action."""

    id: uuid.UUID
    session_id: uuid.UUID
    proposal_id: uuid.UUID | None
    policy_id: uuid.UUID
    action: str
    resource: str | None
    args_digest: str
    status: TicketStatus
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
    escalated_at: datetime | None

    @property
    def pending(self) -> bool:
        return self.status == TicketStatus.PENDING


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    tenant: str | None
    name: str | None
    status: AgentStatus
    capabilities: list[str]
    tags: list[str]
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delegation:
    """A task handed from one agent to another; ``status`` is "active" or "denied"."""

    id: uuid.UUID
    from_agent: str
    to_agent: str
    parent_id: uuid.UUID | None
    session_id: uuid.UUID | None
    task: str
    capability: str | None
    depth: int
    status: DelegationStatus
    reason: str | None
    created_at: datetime

    @property
    def allowed(self) -> bool:
        return self.status == DelegationStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class TokenBudget:
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


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens and cost held against every matching budget until settled or released."""

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
    # Budgets this reservation took past their soft limit (not stored; empty on replay).
    warnings: tuple[str, ...] = ()
    # Whose tokens these are (the identity it was reserved for).
    org_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One row of the token ledger."""

    id: int
    model: str
    total_tokens: int
    cost_usd: Decimal
    reservation_id: uuid.UUID | None
    # Budgets this usage took past their soft limit (not stored; empty on replay).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: its public id, role, tenant, the agents an agent key acts as
    and when it expires; never its secret."""

    id: uuid.UUID
    key_id: str
    name: str | None
    role: str
    tenant: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    agents: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class StandingKill:
    """A kill of an agent, a tenant or everything that also bars new sessions in its
    scope until it is lifted. ``tenant``/``agent_id`` None means any."""

    scope: KillScope
    tenant: str | None
    agent_id: str | None
    active: bool
    reason: str | None
    killed_at: datetime | None
    killed_by: str | None
    lifted_at: datetime | None
    lifted_by: str | None

    @property
    def target(self) -> str:
        """What was killed, in words: "everything", "tenant 't1'", "agent 'a1' in tenant 't1'"."""
        if self.scope == KillScope.ALL:
            return "everything"
        if self.scope == KillScope.TENANT:
            return f"tenant {self.tenant!r}"
        where = "" if self.tenant is None else f" in tenant {self.tenant!r}"
        return f"agent {self.agent_id!r}{where}"


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new API key: ``key`` is the full secret string, shown this once and never stored."""

    api_key: ApiKey
    key: str = field(repr=False)

    @property
    def key_id(self) -> str:
        return self.api_key.key_id


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented an API key: what its role may do, which tenant it is confined to and,
    for an agent key, which agents it acts as."""

    key_id: str
    role: str
    tenant: str | None
    name: str | None
    agents: tuple[str, ...] | None = None

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.key_id, key.role, key.tenant, key.name, key.agents)

    @property
    def identity(self) -> str:
        """How this principal is named in the audit trail (e.g. as an approver)."""
        key = f"key:{self.key_id}"
        return key if self.name is None else f"{self.name} ({key})"

    def can(self, permission: Permission) -> bool:
        return keys.allows(self.role, permission)

    def sees(self, tenant: str | None) -> bool:
        return keys.tenant_allows(self.tenant, tenant)

    def acts_as(self, agent_id: str) -> bool:
        """Whether this key may act as ``agent_id`` (only an agent key is bound to agents)."""
        return keys.agent_allows(self.role, self.agents, agent_id)

    def access(self, tenant: str | None, agent_id: str | None) -> keys.Access:
        """What this key may do with a session (ticket, reservation) of ``tenant`` and
        ``agent_id``: allowed, hidden (another tenant's) or refused (another agent's)."""
        return keys.session_access(self.role, self.tenant, self.agents, tenant, agent_id)


@dataclass(frozen=True, slots=True)
class SignIn:
    """A dashboard sign-in: ``token`` (secret: it belongs in the operator's cookie only, the
    database keeps its hash), who signed in, and when it ends unless signed out first."""

    token: str = field(repr=False)
    principal: Principal
    expires_at: datetime


class _ReadByKey:
    """``value["name"]`` reads the field ``name``: token reports were dicts before they were
    typed, and code written against those keeps working."""

    __slots__ = ()

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or name.startswith("_") or not hasattr(self, name):
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True, slots=True)
class TokenAmounts(_ReadByKey):
    """Tokens, exact USD cost and requests: what a window used or holds."""

    tokens: int
    cost_usd: Decimal
    requests: int


@dataclass(frozen=True, slots=True)
class TokenLimits(_ReadByKey):
    """A budget's limits, or what is left of them; None where there is no limit."""

    tokens: int | None
    cost_usd: Decimal | None
    requests: int | None

    def items(self) -> list[tuple[str, int | Decimal | None]]:
        return [("tokens", self.tokens), ("cost_usd", self.cost_usd), ("requests", self.requests)]


@dataclass(frozen=True, slots=True)
class TokenBudgetStatus(_ReadByKey):
    """One budget in its current window (``token_budget_status``)."""

    budget: TokenBudget
    window_start: datetime
    used: TokenAmounts
    reserved: TokenAmounts
    limits: TokenLimits
    remaining: TokenLimits
    # The limits whose used + reserved is at or past the budget's soft limit.
    soft_limit_reached: list[str]


@dataclass(frozen=True, slots=True)
class TokenUsageRow(_ReadByKey):
    """Usage summed over one group (``token_usage``): ``groups`` holds the value of each
    grouping asked for (org, team, user, agent, model, day), also readable by name."""

    groups: dict[str, Any]
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal

    def __getitem__(self, name: str) -> Any:
        if isinstance(name, str) and name in self.groups:
            return self.groups[name]
        return _ReadByKey.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Any]:
        """The row as one flat mapping: its groups, then its sums."""
        return {
            **self.groups,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
        }
