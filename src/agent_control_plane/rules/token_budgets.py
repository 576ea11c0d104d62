"""Token budget arithmetic: what a window has consumed, whether a charge passes a limit,
which soft limits are reached, and what is left. Pure: store/ reads the totals, the
operations read the budgets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from agent_control_plane.rules.tokens import soft_limits_reached

Amount = int | Decimal
N = TypeVar("N", int, Decimal)


class Limited(Protocol):
    """A budget's limits and model lists, as TokenBudget has them (None: no limit)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def scope_key(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def max_cost_usd(self) -> Decimal | None: ...
    @property
    def max_requests(self) -> int | None: ...
    @property
    def allowed_models(self) -> list[str] | None: ...
    @property
    def denied_models(self) -> list[str] | None: ...
    @property
    def soft_limit_ratio(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """A budget window's usage and holds (summed over a rolling window's buckets)."""

    tokens_used: int
    tokens_reserved: int
    cost_used: Decimal
    cost_reserved: Decimal
    requests_used: int
    requests_reserved: int

    def consumed(self) -> dict[str, Amount]:
        """Used plus held, per limit."""
        return {
            "tokens": self.tokens_used + self.tokens_reserved,
            "cost_usd": self.cost_used + self.cost_reserved,
            "requests": self.requests_used + self.requests_reserved,
        }

    def describe(self) -> str:
        return (
            f"tokens {self.tokens_used}+{self.tokens_reserved} held, cost ${self.cost_used}"
            f"+${self.cost_reserved} held, requests {self.requests_used}"
            f"+{self.requests_reserved} held"
        )


NOTHING_CONSUMED = WindowTotals(0, 0, Decimal(0), Decimal(0), 0, 0)


def limits_of(budget: Limited) -> dict[str, Amount | None]:
    return {
        "tokens": budget.max_tokens,
        "cost_usd": budget.max_cost_usd,
        "requests": budget.max_requests,
    }


def over(budget: Limited, totals: WindowTotals, tokens: int, cost: Decimal, requests: int) -> bool:
    """Whether used + held + this charge passes any of the budget's limits."""
    consumed = totals.consumed()
    charge: dict[str, Amount] = {"tokens": tokens, "cost_usd": cost, "requests": requests}
    return any(
        limit is not None and consumed[name] + charge[name] > limit
        for name, limit in limits_of(budget).items()
    )


def soft_limit_lines(budget: Limited, totals: WindowTotals) -> list[str]:
    """One line per limit that used + held has taken past the budget's soft limit."""
    if budget.soft_limit_ratio is None:
        return []
    consumed = totals.consumed()
    limits = limits_of(budget)
    return [
        f"token budget {budget.id} ({budget.scope_key}, {budget.period}): {name} "
        f"{consumed[name]} of {limits[name]} is past its soft limit "
        f"({budget.soft_limit_ratio:.0%})"
        for name in soft_limits_reached(limits, consumed, budget.soft_limit_ratio)
    ]


def model_refusal(budgets: Sequence[Limited], model: str) -> str | None:
    """Why one of ``budgets`` refuses ``model``, or None if every one allows it."""
    for budget in budgets:
        if budget.denied_models and model in budget.denied_models:
            return f"model {model!r} is denied by token budget {budget.id}"
        if budget.allowed_models is not None and model not in budget.allowed_models:
            return f"model {model!r} is not among the models token budget {budget.id} allows"
    return None


def left(limit: N | None, consumed: N) -> N | None:
    """What is left of ``limit`` after ``consumed``, never below zero."""
    return None if limit is None else limit - min(consumed, limit)
