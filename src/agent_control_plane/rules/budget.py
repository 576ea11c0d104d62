"""Session budget arithmetic, for the paths that must explain a refusal or dry-run it."""

from __future__ import annotations

from decimal import Decimal


def refusal(
    *, actions_used: int, max_actions: int, cost_used: Decimal, max_cost: Decimal, cost: Decimal
) -> str | None:
    """The budget a charge of one action costing ``cost`` would break, or None."""
    if actions_used + 1 > max_actions:
        return "budget.max_actions"
    if cost_used + cost > max_cost:
        return "budget.max_cost"
    return None
