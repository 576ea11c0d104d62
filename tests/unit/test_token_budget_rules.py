"""The budget arithmetic, pure (rules/token_budgets.py): used + held + a charge against each
limit, soft limits, what is left, and which budget refuses a model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from agent_control_plane.rules import token_budgets
from agent_control_plane.rules.token_budgets import NOTHING_CONSUMED, WindowTotals


@dataclass(frozen=True)
class Budget:
    max_tokens: int | None = None
    max_cost_usd: Decimal | None = None
    max_requests: int | None = None
    allowed_models: list[str] | None = None
    denied_models: list[str] | None = None
    soft_limit_ratio: Decimal | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    scope_key: str = "org:o1"
    period: str = "day"


TOTALS = WindowTotals(
    tokens_used=60,
    tokens_reserved=30,
    cost_used=Decimal("0.50"),
    cost_reserved=Decimal("0.25"),
    requests_used=3,
    requests_reserved=1,
)


def test_consumed_is_used_plus_held() -> None:
    assert TOTALS.consumed() == {"tokens": 90, "cost_usd": Decimal("0.75"), "requests": 4}
    assert NOTHING_CONSUMED.consumed() == {"tokens": 0, "cost_usd": 0, "requests": 0}


def test_a_charge_is_over_only_past_a_limit() -> None:
    tokens = Budget(max_tokens=100)
    assert not token_budgets.over(tokens, TOTALS, 10, Decimal(0), 1)  # exactly at the limit
    assert token_budgets.over(tokens, TOTALS, 11, Decimal(0), 1)
    cost = Budget(max_cost_usd=Decimal("1.00"))
    assert not token_budgets.over(cost, TOTALS, 10**9, Decimal("0.25"), 1)
    assert token_budgets.over(cost, TOTALS, 0, Decimal("0.26"), 0)
    requests = Budget(max_requests=4)
    assert not token_budgets.over(requests, TOTALS, 0, Decimal(0), 0)
    assert token_budgets.over(requests, TOTALS, 0, Decimal(0), 1)
    assert not token_budgets.over(Budget(), TOTALS, 10**9, Decimal(10**9), 10**9)


def test_soft_limit_lines_name_each_limit_past_its_ratio() -> None:
    budget = Budget(max_tokens=100, max_requests=100, soft_limit_ratio=Decimal("0.8"))
    lines = token_budgets.soft_limit_lines(budget, TOTALS)
    assert len(lines) == 1
    assert "tokens 90 of 100 is past its soft limit (80%)" in lines[0]
    assert token_budgets.soft_limit_lines(Budget(max_tokens=100), TOTALS) == []


def test_what_is_left_never_goes_below_zero() -> None:
    assert token_budgets.left(100, 90) == 10
    assert token_budgets.left(100, 150) == 0
    assert token_budgets.left(Decimal("1.00"), Decimal("0.75")) == Decimal("0.25")
    assert token_budgets.left(None, 5) is None


def test_the_first_budget_that_refuses_a_model_is_named() -> None:
    open_one, denying = Budget(), Budget(denied_models=["big"])
    allowing = Budget(allowed_models=["small"])
    assert token_budgets.model_refusal([open_one, allowing], "small") is None
    assert f"denied by token budget {denying.id}" in str(
        token_budgets.model_refusal([open_one, denying], "big")
    )
    assert f"not among the models token budget {allowing.id} allows" in str(
        token_budgets.model_refusal([allowing], "big")
    )


def test_totals_describe_themselves_for_an_exhausted_budget() -> None:
    assert TOTALS.describe() == ("tokens 60+30 held, cost $0.50+$0.25 held, requests 3+1 held")
