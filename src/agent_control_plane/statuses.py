"""Every set of statuses ACP stores or accepts, one ``StrEnum`` each: the schema's CHECK
constraints, the models, the operations' input checks and the gateway's request and
response schemas all read their values from here.

A member is its own string (``SessionStatus.ABORTED == "aborted"``, ``str()`` and JSON give
``"aborted"``), so stored rows, events and every caller's string comparisons read the same
as before these existed."""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    """created → active ⇄ paused → completed | aborted (rules/lifecycle.py)."""

    CREATED = "created"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


class TicketStatus(StrEnum):
    """An approval ticket: pending until decided or expired; consumed once used up."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CONSUMED = "consumed"


class ReservationStatus(StrEnum):
    """A token reservation: held until settled, released or expired."""

    HELD = "held"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class OutcomeStatus(StrEnum):
    """What happened after an allowed decision (``record_outcome``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AgentStatus(StrEnum):
    """A registered agent: a disabled one may not be handed tasks."""

    ACTIVE = "active"
    DISABLED = "disabled"


class DelegationStatus(StrEnum):
    """A handoff between agents: active when allowed, denied (with a reason) otherwise."""

    ACTIVE = "active"
    DENIED = "denied"


class KillScope(StrEnum):
    """What a standing kill bars: one agent's sessions, a tenant's, or every session."""

    AGENT = "agent"
    TENANT = "tenant"
    ALL = "all"


class KillTarget(StrEnum):
    """What a kill stops: one session, or a scope that also stands (KillScope)."""

    SESSION = "session"
    AGENT = "agent"
    TENANT = "tenant"
    ALL = "all"


def values(statuses: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings of a status set, in declaration order (for CHECKs and messages)."""
    return tuple(member.value for member in statuses)
