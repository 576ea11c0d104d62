"""Token budgets: set, change, delete and list them, their status, and the checks
every charge against them shares (which budgets apply, exhaustion, soft limits)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.errors import (
    InvalidInputError,
    ModelNotAllowedError,
    TokenBudgetExhausted,
    TokenBudgetExistsError,
)
from agent_control_plane.errors import (
    ReservationNotFoundError as ReservationNotFoundError,
)
from agent_control_plane.errors import (
    TokenBudgetNotFoundError as TokenBudgetNotFoundError,
)
from agent_control_plane.models import (
    TokenAmounts,
    TokenBudget,
    TokenBudgetStatus,
    TokenLimits,
)
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import token_budgets as budget_rules
from agent_control_plane.rules import validation
from agent_control_plane.rules.token_budgets import WindowTotals
from agent_control_plane.rules.tokens import (
    Identity,
    TokenUsage,
    parse_period,
    parse_timezone,
    rolling_bucket,
    rolling_length,
    session_scope_key,
    soft_limits_reached,
    window_start,
)
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import tokens as token_store

logger = logging.getLogger("agent_control_plane.tokens")


_LIMITS = (
    "max_tokens",
    "max_cost_usd",
    "max_requests",
    "allowed_models",
    "denied_models",
    "soft_limit_ratio",
)


def _limits(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("max_tokens", "max_requests"):
        if name in values:
            out[name] = None if values[name] is None else validation.counter(values[name], name)
    if "max_cost_usd" in values:
        value = values["max_cost_usd"]
        out["max_cost_usd"] = None if value is None else validation.money(value, "max_cost_usd")
    for name in ("allowed_models", "denied_models"):
        if name in values:
            models = values[name]
            if models is not None and not isinstance(models, list | tuple | set | frozenset):
                raise InvalidInputError(name, "must be a list of model names")
            out[name] = (
                None
                if models is None
                else sorted({validation.required_text(model, name) for model in models})
            )
    if "soft_limit_ratio" in values:
        ratio = values["soft_limit_ratio"]
        out["soft_limit_ratio"] = None if ratio is None else _ratio(ratio)
    return out


def _ratio(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidInputError("soft_limit_ratio", "must be a number in (0, 1]")
    try:
        ratio = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInputError("soft_limit_ratio", "must be a number in (0, 1]") from None
    if not ratio.is_finite() or not 0 < ratio <= 1:
        raise InvalidInputError("soft_limit_ratio", "must be in (0, 1]")
    return ratio


def identity_argument(value: Any) -> Identity:
    if not isinstance(value, Identity):
        raise InvalidInputError(
            "identity", f"must be an Identity(org=…, team=…, …), not a {type(value).__name__}"
        )
    return value


def usage_argument(value: Any) -> TokenUsage:
    if not isinstance(value, TokenUsage):
        raise InvalidInputError(
            "usage", f"must be a TokenUsage(input_tokens=…, …), not a {type(value).__name__}"
        )
    return value


def set_token_budget(
    connection: Connection,
    runtime: Runtime,
    scope_of: Identity | uuid.UUID,
    period: str,
    *,
    max_tokens: int | None = None,
    max_cost_usd: Decimal | int | str | None = None,
    max_requests: int | None = None,
    allowed_models: list[str] | None = None,
    denied_models: list[str] | None = None,
    soft_limit_ratio: Decimal | float | None = None,
    timezone: str = "UTC",
) -> TokenBudget:
    """Create the budget of ``scope_of`` (an Identity, or a session id) for ``period``
    (minute, hour, day, week, month or lifetime, counted in ``timezone``). One budget per
    scope and period: a second raises TokenBudgetExistsError (use update_token_budget)."""
    limits = _limits(
        {
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost_usd,
            "max_requests": max_requests,
            "allowed_models": allowed_models,
            "denied_models": denied_models,
            "soft_limit_ratio": soft_limit_ratio,
        }
    )
    parse_period(period)
    parse_timezone(timezone)
    if isinstance(scope_of, Identity):
        key = scope_of.scope_key()
        owner = {f"{n}_id": getattr(scope_of, n) for n in ("org", "team", "user", "agent")}
        owner["session_id"] = None
    else:
        session_id = validation.session_id(scope_of)
        key = session_scope_key(session_id)
        owner = {
            "org_id": None,
            "team_id": None,
            "user_id": None,
            "agent_id": None,
            "session_id": session_id,
        }
    budget_id = uuid.uuid4()
    try:
        with connection.begin():
            now = runtime.clock()
            token_store.insert_budget(
                connection,
                runtime,
                {
                    "id": budget_id,
                    "scope_key": key,
                    "period": period,
                    "timezone": timezone,
                    **owner,
                    **limits,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            budget = token_store.get_budget(connection, runtime, budget_id)
    except IntegrityError as error:
        raise TokenBudgetExistsError(
            f"a {period} budget for {key} exists already: change it with update_token_budget"
        ) from error
    assert budget is not None
    return budget


def update_token_budget(
    connection: Connection, runtime: Runtime, /, budget_id: uuid.UUID | str, **limits: Any
) -> TokenBudget:
    """Change a budget's limits or model lists (keyword arguments as in set_token_budget)."""
    unknown = set(limits) - set(_LIMITS)
    if unknown:
        raise InvalidInputError("limits", f"cannot change {sorted(unknown)}")
    values = _limits(limits)
    bid = validation.identifier(budget_id, "budget_id", "a token budget")
    with connection.begin():
        now = runtime.clock()
        if not token_store.update_budget(connection, runtime, bid, {**values, "updated_at": now}):
            raise TokenBudgetNotFoundError(f"no token budget {bid}")
        budget = token_store.get_budget(connection, runtime, bid)
    assert budget is not None
    return budget


def delete_token_budget(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID | str
) -> bool:
    """Delete a budget and its windows; False if there was none."""
    with connection.begin():
        bid = validation.identifier(budget_id, "budget_id", "a token budget")
        return token_store.delete_budget(connection, runtime, bid)


@repeatable
def list_token_budgets(connection: Connection, runtime: Runtime) -> list[TokenBudget]:
    """Every token budget."""
    with connection.begin():
        return token_store.list_budgets(connection, runtime)


def applicable(
    connection: Connection, runtime: Runtime, identity: Identity, session_id: uuid.UUID | None
) -> list[TokenBudget]:
    fields = {name: getattr(identity, name) for name in ("org", "team", "user", "agent")}
    return token_store.candidates(connection, runtime, fields, session_id)


def check_model(budgets: list[TokenBudget], model: str) -> None:
    refusal = budget_rules.model_refusal(budgets, model)
    if refusal is not None:
        raise ModelNotAllowedError(refusal)


def window_since(budget: TokenBudget, now: datetime) -> datetime:
    """Where the budget's current window starts (for a rolling one, its oldest bucket)."""
    length = rolling_length(budget.period)
    if length is not None:
        return rolling_bucket(length, now)[1]
    return window_start(budget.period, now, parse_timezone(budget.timezone))


def window_totals(
    connection: Connection, runtime: Runtime, budget: TokenBudget, now: datetime
) -> WindowTotals:
    return token_store.rolling_totals(connection, runtime, budget.id, window_since(budget, now))


def soft_warnings(budget: TokenBudget, totals: WindowTotals) -> list[str]:
    """One line per limit of ``budget`` that used + held has taken past its soft limit;
    each is also logged, so an operator sees it even if the caller ignores it."""
    warnings = budget_rules.soft_limit_lines(budget, totals)
    for warning in warnings:
        logger.warning(warning)
    return warnings


def exhausted(
    connection: Connection,
    runtime: Runtime,
    budget: TokenBudget,
    start: datetime,
    tokens: int,
    cost: Decimal,
    totals: WindowTotals | None = None,
) -> TokenBudgetExhausted:
    if totals is None:
        totals = token_store.window(connection, runtime, budget.id, start)
    used = "no usage yet" if totals is None else totals.describe()
    limit = (
        f"max_tokens={budget.max_tokens} max_cost_usd={budget.max_cost_usd} "
        f"max_requests={budget.max_requests}"
    )
    return TokenBudgetExhausted(
        f"token budget {budget.id} ({budget.scope_key}, {budget.period} window from "
        f"{start.isoformat()}) cannot take {tokens} tokens / ${cost}: {limit}; {used}",
        budget_id=str(budget.id),
        window_start=start.isoformat(),
        limit=limit,
        usage=used,
    )


@repeatable
def token_budget_status(connection: Connection, runtime: Runtime) -> list[TokenBudgetStatus]:
    """Each budget with its current window: used, reserved and remaining per limit."""
    with connection.begin():
        now = runtime.clock()
        report = []
        for budget in token_store.list_budgets(connection, runtime):
            start = window_since(budget, now)
            totals = token_store.rolling_totals(connection, runtime, budget.id, start)
            used = TokenAmounts(totals.tokens_used, totals.cost_used, totals.requests_used)
            reserved = TokenAmounts(
                totals.tokens_reserved, totals.cost_reserved, totals.requests_reserved
            )
            consumed = totals.consumed()
            limits = TokenLimits(budget.max_tokens, budget.max_cost_usd, budget.max_requests)
            report.append(
                TokenBudgetStatus(
                    budget=budget,
                    window_start=start,
                    used=used,
                    reserved=reserved,
                    limits=limits,
                    remaining=TokenLimits(
                        tokens=budget_rules.left(limits.tokens, used.tokens + reserved.tokens),
                        cost_usd=budget_rules.left(
                            limits.cost_usd, used.cost_usd + reserved.cost_usd
                        ),
                        requests=budget_rules.left(
                            limits.requests, used.requests + reserved.requests
                        ),
                    ),
                    soft_limit_reached=soft_limits_reached(
                        budget_rules.limits_of(budget), consumed, budget.soft_limit_ratio
                    ),
                )
            )
    return report
