"""reserve_tokens remembers the budgets it read, checked against the budget epoch: one
statement fewer per reservation, and never a stale budget, whichever process changed it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from agent_control_plane import ControlPlane
from agent_control_plane.errors import ModelNotAllowedError, TokenBudgetExhausted
from agent_control_plane.rules.tokens import Identity, TokenUsage
from agent_control_plane.store import tokens as token_store
from tests.statements import statements_sent

PRICES = {"small": {"input": "1", "output": "1"}, "other": {"input": "1", "output": "1"}}
ALICE = Identity(org="acme", user="alice")


@pytest.fixture
def pair(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> tuple[ControlPlane, ControlPlane]:
    for cp in two_control_planes:
        cp.set_prices(PRICES)
    return two_control_planes


def _reads_of_budgets(cp: ControlPlane, call: Callable[[], object]) -> int:
    """How many statements ``call`` sends that read the token budgets table."""
    budgets = cp.tables.token_budgets.name
    return sum(
        1
        for statement in statements_sent(cp, call)
        if statement.lstrip().upper().startswith("SELECT")
        and re.search(rf"FROM (\w+\.)?{budgets}\b", statement)
    )


def _reserve(cp: ControlPlane, tokens: int = 10, model: str = "small") -> object:
    return cp.reserve_tokens(ALICE, model, input_tokens=tokens, max_output_tokens=0)


def _epoch(cp: ControlPlane) -> int | None:
    with cp.engine.connect() as connection, connection.begin():
        return token_store.budget_epoch(connection, cp._runtime)


def test_a_second_reservation_does_not_read_the_budgets_again(
    pair: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, _ = pair
    cp.set_token_budget(Identity(org="acme"), "month", max_tokens=1000)
    assert _reads_of_budgets(cp, lambda: _reserve(cp)) == 1
    assert _reads_of_budgets(cp, lambda: _reserve(cp)) == 0
    assert _reads_of_budgets(cp, lambda: _reserve(cp)) == 0
    [status] = cp.token_budget_status()
    assert status["reserved"]["tokens"] == 30


def test_a_budget_changed_elsewhere_applies_to_the_very_next_reservation(
    pair: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, elsewhere = pair
    budget = cp.set_token_budget(Identity(org="acme"), "month", max_tokens=1000)
    _reserve(cp)  # remembered

    # A lower limit, set by another process.
    elsewhere.update_token_budget(budget.id, max_tokens=15)
    with pytest.raises(TokenBudgetExhausted):
        _reserve(cp)

    # A new budget that also applies to alice, with a model list.
    elsewhere.update_token_budget(budget.id, max_tokens=1000)
    elsewhere.set_token_budget(ALICE, "day", max_tokens=1000, allowed_models=["other"])
    with pytest.raises(ModelNotAllowedError):
        _reserve(cp, model="small")
    assert len(_reserve(cp, model="other").holds) == 2  # type: ignore[attr-defined]

    # Both deleted: nothing left to hold.
    for each in elsewhere.list_token_budgets():
        elsewhere.delete_token_budget(each.id)
    assert _reserve(cp).holds == []  # type: ignore[attr-defined]


def test_an_identity_without_budgets_reads_only_the_epoch(
    pair: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, elsewhere = pair
    assert _reserve(cp).holds == []  # type: ignore[attr-defined]
    assert _reads_of_budgets(cp, lambda: _reserve(cp)) == 0
    elsewhere.set_token_budget(ALICE, "month", max_tokens=5)
    with pytest.raises(TokenBudgetExhausted):
        _reserve(cp)


def test_every_budget_change_counts_once_and_a_failed_one_not_at_all(
    pair: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, _ = pair
    start = _epoch(cp)
    assert start == 0
    budget = cp.set_token_budget(ALICE, "month", max_tokens=10)
    assert _epoch(cp) == 1
    with pytest.raises(Exception, match="exists already"):
        cp.set_token_budget(ALICE, "month", max_tokens=10)
    assert _epoch(cp) == 1  # rolled back with the failed insert
    cp.update_token_budget(budget.id, max_tokens=20)
    assert _epoch(cp) == 2
    assert cp.delete_token_budget(budget.id)
    assert _epoch(cp) == 3
    assert not cp.delete_token_budget(budget.id)
    assert _epoch(cp) == 3  # nothing deleted, nothing counted


def test_a_rolling_budget_first_checks_the_epoch_by_reading_it(
    pair: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, elsewhere = pair
    budget = cp.set_token_budget(ALICE, "rolling:1h", max_tokens=1000)
    holds: list[object] = []
    # A rolling hold locks its budget row: that read stays, the read of the budgets goes.
    assert _reads_of_budgets(cp, lambda: holds.append(_reserve(cp))) == 2
    cp.settle(holds[0], TokenUsage(input_tokens=10, output_tokens=0))  # type: ignore[arg-type]
    assert _reads_of_budgets(cp, lambda: _reserve(cp)) == 1
    elsewhere.update_token_budget(budget.id, max_tokens=25)
    with pytest.raises(TokenBudgetExhausted):
        _reserve(cp)


def test_what_is_remembered_is_bounded(
    pair: tuple[ControlPlane, ControlPlane], monkeypatch: pytest.MonkeyPatch
) -> None:
    cp, _ = pair
    cp._runtime.bound_memory(3)
    for user in range(10):
        cp.reserve_tokens(
            Identity(org="acme", user=f"u{user}"), "small", input_tokens=1, max_output_tokens=0
        )
        assert cp._runtime.memory.sizes()["token_budgets"] <= 3
