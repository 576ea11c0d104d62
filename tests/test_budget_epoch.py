"""reserve_tokens remembers the budgets it read, checked against the budget epoch: one
statement fewer per reservation, and never a stale budget, whichever process changed it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from agent_control_plane import ControlPlane
from agent_control_plane.errors import ModelNotAllowedError, TokenBudgetExhausted
from agent_control_plane.operations import tokens as token_operations
from agent_control_plane.rules.tokens import Identity, TokenUsage
from agent_control_plane.store import tokens as token_store
from agent_control_plane.store.prepared import Prepared
from tests.databases import TestDatabase

PRICES = {"small": {"input": "1", "output": "1"}, "other": {"input": "1", "output": "1"}}
ALICE = Identity(org="acme", user="alice")


@pytest.fixture
def pair(database: TestDatabase) -> Iterator[tuple[ControlPlane, ControlPlane]]:
    """Two ControlPlanes on one database: as two processes, each remembers on its own."""
    with (
        ControlPlane.open(database.url_string) as one,
        ControlPlane.open(database.url_string) as other,
    ):
        one.set_prices(PRICES)
        other.set_prices(PRICES)
        yield one, other


def _reads_of_budgets(cp: ControlPlane, call: Callable[[], object]) -> int:
    """How many statements ``call`` sends that read the token budgets table, whether
    through SQLAlchemy or straight to the driver."""
    budgets = cp.tables.token_budgets.name
    seen: list[str] = []

    def note(statement: str) -> None:
        reads = re.search(rf"FROM (\w+\.)?{budgets}\b", statement)
        if statement.lstrip().upper().startswith("SELECT") and reads:
            seen.append(statement)

    def on_execute(conn: object, cursor: object, statement: str, *rest: object) -> None:
        note(statement)

    direct = Prepared._run

    def counted(self: Prepared, *args: Any, **kwargs: Any) -> Any:
        note(self.sql)
        return direct(self, *args, **kwargs)

    event.listen(cp.engine, "before_cursor_execute", on_execute)
    Prepared._run = counted  # type: ignore[method-assign]
    try:
        call()
    finally:
        Prepared._run = direct  # type: ignore[method-assign]
        event.remove(cp.engine, "before_cursor_execute", on_execute)
    return len(seen)


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
    monkeypatch.setattr(token_operations, "REMEMBERED_ENTRIES", 3)
    for user in range(10):
        cp.reserve_tokens(
            Identity(org="acme", user=f"u{user}"), "small", input_tokens=1, max_output_tokens=0
        )
        assert len(cp._runtime.token_budgets) <= 3
