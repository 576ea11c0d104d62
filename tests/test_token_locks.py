"""Token reservations never deadlock: every statement takes the budget windows' row locks in
one order (budget id), so concurrent reserves, settles and releases over identities that
share two or three budgets wait for each other instead. No deadlock is even retried, and
no hold is left stranded."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from agent_control_plane import ControlPlane
from agent_control_plane.rules.tokens import Identity, TokenUsage

THREADS, PAIRS = 8, 60
USAGE = TokenUsage(input_tokens=7, output_tokens=3)


def _budgets(cp: ControlPlane, shared: int) -> None:
    """``shared`` budgets that every identity of org o / team t matches."""
    cp.set_prices({"m": {"input": "1", "output": "1"}})
    cp.set_token_budget(Identity(org="o"), "day", max_tokens=10**12)
    cp.set_token_budget(Identity(org="o", team="t"), "day", max_tokens=10**12)
    if shared == 3:
        cp.set_token_budget(Identity(org="o"), "month", max_cost_usd="1000000")


@pytest.mark.parametrize("shared", [2, 3])
def test_reserves_and_settles_over_shared_budgets_never_deadlock(
    control_plane: ControlPlane, shared: int, caplog: pytest.LogCaptureFixture
) -> None:
    cp = control_plane
    _budgets(cp, shared)
    barrier = threading.Barrier(THREADS)

    def work(index: int) -> int:
        identity = Identity(org="o", team="t", user=f"u{index}")
        barrier.wait()
        settled = 0
        for pair in range(PAIRS):
            hold = cp.reserve_tokens(identity, "m", input_tokens=7, max_output_tokens=9)
            if pair % 5 == 4:
                cp.release(hold)
            else:
                cp.settle(hold, USAGE)
                settled += 1
        return settled

    with (
        caplog.at_level(logging.INFO, logger="agent_control_plane"),
        ThreadPoolExecutor(THREADS) as pool,
    ):
        settled = sum(pool.map(work, range(THREADS)))
    assert [r.message for r in caplog.records if "deadlock" in r.message] == []

    windows = cp.tables.token_windows
    with cp.engine.connect() as connection:
        rows = connection.execute(select(windows)).all()
        ledger = connection.execute(
            select(func.count(), func.sum(cp.tables.token_ledger.c.total_tokens))
        ).one()
    assert len(rows) == shared
    for row in rows:  # nothing stranded: every hold was settled or released
        assert (row.tokens_reserved, row.cost_reserved, row.requests_reserved) == (0, 0, 0)
        assert row.tokens_used == settled * USAGE.total
        assert row.requests_used == settled
    assert (ledger[0], int(ledger[1])) == (settled, settled * USAGE.total)
    assert settled == THREADS * PAIRS * 4 // 5
    assert Decimal(rows[0].cost_used) >= 0
