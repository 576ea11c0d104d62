"""Token budgets: hard ceilings with reserve -> settle, and a ledger that never loses usage.

The operations live by job: budgets (token_budgets), reservations (token_reservations)
and usage (token_usage); this module names them all, for the importers that knew them
here."""

from __future__ import annotations

from agent_control_plane.errors import ReservationNotFoundError as ReservationNotFoundError
from agent_control_plane.errors import TokenBudgetNotFoundError as TokenBudgetNotFoundError
from agent_control_plane.operations.token_budgets import (
    delete_token_budget,
    list_token_budgets,
    set_token_budget,
    token_budget_status,
    update_token_budget,
)
from agent_control_plane.operations.token_reservations import (
    DEFAULT_TTL,
    get_reservation,
    release,
    release_expired_batch,
    release_expired_holds,
    reserve_tokens,
    settle,
)
from agent_control_plane.operations.token_usage import GROUPS, record_usage, token_usage

__all__ = [
    "DEFAULT_TTL",
    "GROUPS",
    "ReservationNotFoundError",
    "TokenBudgetNotFoundError",
    "delete_token_budget",
    "get_reservation",
    "list_token_budgets",
    "record_usage",
    "release",
    "release_expired_batch",
    "release_expired_holds",
    "reserve_tokens",
    "set_token_budget",
    "settle",
    "token_budget_status",
    "token_usage",
    "update_token_budget",
]
