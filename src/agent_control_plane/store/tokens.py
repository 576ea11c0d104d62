"""Token statements, by job: budgets and windows (token_budgets), reservations
(token_reservations), the ledger and its report (token_usage). This module names them
all, for the importers that knew them here."""

from __future__ import annotations

from agent_control_plane.store.token_budgets import (
    add_hold,
    budget_epoch,
    candidates,
    delete_budget,
    ensure_window,
    get_budget,
    hold,
    insert_budget,
    list_budgets,
    lock_budget,
    move,
    rolling_totals,
    to_budget,
    update_budget,
    window,
)
from agent_control_plane.store.token_reservations import (
    Finished,
    expired_held,
    finish_reservation,
    get_reservation,
    insert_reservation,
    to_reservation,
)
from agent_control_plane.store.token_usage import insert_ledger, ledger_for, usage_report

__all__ = [
    "Finished",
    "add_hold",
    "budget_epoch",
    "candidates",
    "delete_budget",
    "ensure_window",
    "expired_held",
    "finish_reservation",
    "get_budget",
    "get_reservation",
    "hold",
    "insert_budget",
    "insert_ledger",
    "insert_reservation",
    "ledger_for",
    "list_budgets",
    "lock_budget",
    "move",
    "rolling_totals",
    "to_budget",
    "to_reservation",
    "update_budget",
    "usage_report",
    "window",
]
