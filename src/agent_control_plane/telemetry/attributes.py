"""What each traced call says about itself: span attributes from its arguments and result.

Pure functions over plain values (no OpenTelemetry import), so they are tested without an
SDK. Every name sits in the ``acp.`` namespace, except OpenTelemetry's own ``error.type``.
An attribute function never raises: a bad argument is the operation's error to report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from agent_control_plane.models import Decision, Reservation, UsageRecord
from agent_control_plane.rules.tokens import Identity, TokenUsage
from agent_control_plane.runtime import Runtime

AttributeValue = str | bool | int | float
Attributes = dict[str, AttributeValue]

SESSION_ID = "acp.session.id"
AGENT_ID = "acp.agent.id"
TENANT = "acp.tenant"
ACTION = "acp.action"
OUTCOME = "acp.outcome"
REASON = "acp.reason"
COST = "acp.cost"
CHARGED = "acp.charged"
REMAINING_COST = "acp.budget.remaining_cost"
REMAINING_ACTIONS = "acp.budget.remaining_actions"
TICKET_ID = "acp.ticket.id"
EVENT_SEQ = "acp.event.seq"
MODEL = "acp.model"
RESERVATION_ID = "acp.reservation.id"
INPUT_TOKENS = "acp.tokens.input"
OUTPUT_TOKENS = "acp.tokens.output"
MAX_OUTPUT_TOKENS = "acp.tokens.max_output"
TOTAL_TOKENS = "acp.tokens.total"
RESERVED_TOKENS = "acp.tokens.reserved"
TOKEN_BUDGET_ID = "acp.token_budget.id"
TOKEN_BUDGET_SCOPE = "acp.token_budget.scope"
TOKEN_BUDGET_PERIOD = "acp.token_budget.period"
ERROR_TYPE = "error.type"  # OpenTelemetry's general attribute for a failed operation
ERROR_OUTCOME = "error"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> float | None:
    """A cost as a float for telemetry (the exact Decimal stays in the database)."""
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _named(pairs: dict[str, AttributeValue | None]) -> Attributes:
    return {name: value for name, value in pairs.items() if value is not None}


def reason_category(reason: str) -> str:
    """The low-cardinality part of a reason, for metrics: ``approval.once:<ticket id>`` →
    ``approval.once`` (spans keep the whole reason)."""
    return reason.partition(":")[0]


def govern_request(
    session_id: object, action: object, *, cost: object = 0, **_: object
) -> Attributes:
    return _named({SESSION_ID: _text(session_id), ACTION: _text(action), COST: _number(cost)})


def decision_result(decision: Decision, runtime: Runtime) -> Attributes:
    # The session's agent and tenant are cached by govern itself: reading them costs no I/O.
    facts = runtime.memory.session_facts(decision.session_id)
    return _named(
        {
            OUTCOME: decision.outcome.value,
            REASON: decision.reason,
            CHARGED: decision.charged,
            COST: float(decision.cost),
            REMAINING_COST: float(decision.remaining_cost),
            REMAINING_ACTIONS: decision.remaining_actions,
            EVENT_SEQ: decision.event_seq,
            TICKET_ID: _text(decision.ticket_id),
            AGENT_ID: None if facts is None else facts.agent_id,
            TENANT: None if facts is None else facts.tenant,
        }
    )


def _identity(identity: object) -> Attributes:
    if not isinstance(identity, Identity):
        return {}
    return _named(
        {
            "acp.org": identity.org,
            "acp.team": identity.team,
            "acp.user": identity.user,
            AGENT_ID: identity.agent,
        }
    )


def _counter(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reserve_request(
    identity: object,
    model: object,
    *,
    input_tokens: object = None,
    max_output_tokens: object = None,
    session_id: object = None,
    **_: object,
) -> Attributes:
    return {
        **_identity(identity),
        **_named(
            {
                MODEL: _text(model),
                INPUT_TOKENS: _counter(input_tokens),
                MAX_OUTPUT_TOKENS: _counter(max_output_tokens),
                SESSION_ID: _text(session_id),
            }
        ),
    }


def reservation_result(reservation: Reservation, _runtime: Runtime) -> Attributes:
    return {
        OUTCOME: reservation.status,
        RESERVATION_ID: str(reservation.id),
        MODEL: reservation.model,
        RESERVED_TOKENS: reservation.reserved_tokens,
        COST: float(reservation.reserved_cost),
    }


def _reservation_id(reservation: object) -> str | None:
    if isinstance(reservation, Reservation):
        return str(reservation.id)
    return _text(reservation)


def settle_request(reservation: object, usage: object = None, **_: object) -> Attributes:
    attributes = _named({RESERVATION_ID: _reservation_id(reservation)})
    if isinstance(usage, TokenUsage):
        attributes[INPUT_TOKENS] = usage.input_tokens
        attributes[OUTPUT_TOKENS] = usage.output_tokens
        attributes[TOTAL_TOKENS] = usage.total
    return attributes


def usage_result(record: UsageRecord, _runtime: Runtime) -> Attributes:
    return {
        OUTCOME: "settled",
        MODEL: record.model,
        TOTAL_TOKENS: record.total_tokens,
        COST: float(record.cost_usd),
    }


def release_request(reservation: object, **_: object) -> Attributes:
    return _named({RESERVATION_ID: _reservation_id(reservation)})


def released_result(reservation: Reservation, _runtime: Runtime) -> Attributes:
    return {OUTCOME: reservation.status, MODEL: reservation.model}


def failure(error: BaseException) -> Attributes:
    attributes: Attributes = {OUTCOME: ERROR_OUTCOME, ERROR_TYPE: type(error).__qualname__}
    budget_id = getattr(error, "budget_id", None)
    if isinstance(budget_id, str):
        attributes[TOKEN_BUDGET_ID] = budget_id
    return attributes


@dataclass(frozen=True, slots=True)
class Traced:
    """One traced method: its span name and how to describe its request and result."""

    method: str
    request: Callable[..., Attributes]
    result: Callable[[Any, Runtime], Attributes]

    @property
    def span_name(self) -> str:
        return f"acp.{self.method}"


GOVERN = Traced("govern", govern_request, decision_result)
TRACED = (
    GOVERN,
    Traced("reserve_tokens", reserve_request, reservation_result),
    Traced("settle", settle_request, usage_result),
    Traced("release", release_request, released_result),
)
