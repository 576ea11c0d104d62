"""Token budgets: hard ceilings under concurrency, all-or-none holds, an exact ledger."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    InvalidInputError,
    ModelNotAllowedError,
    TokenBudgetExhausted,
    TokenBudgetExistsError,
)
from agent_control_plane.models import Reservation
from agent_control_plane.rules.tokens import (
    Identity,
    TokenUsage,
    UnknownModelError,
    soft_limits_reached,
)
from tests.databases import TestDatabase

PRICES = {"small": {"input": "1", "output": "2"}, "cheap": {"input": "4", "output": "0"}}
ACME = Identity(org="acme")
ALICE = Identity(org="acme", user="alice")


@pytest.fixture
def cp(control_plane: ControlPlane) -> ControlPlane:
    control_plane.set_prices(PRICES)
    return control_plane


def _window_totals(cp: ControlPlane) -> tuple[int, int, Decimal, Decimal]:
    w = cp.tables.token_windows.c
    with cp.engine.connect() as connection:
        row = connection.execute(
            select(
                func.sum(w.tokens_used),
                func.sum(w.tokens_reserved),
                func.sum(w.cost_used),
                func.sum(w.cost_reserved),
            )
        ).one()
    return int(row[0] or 0), int(row[1] or 0), Decimal(row[2] or 0), Decimal(row[3] or 0)


def _ledger_tokens(cp: ControlPlane) -> int:
    ledger = cp.tables.token_ledger.c
    with cp.engine.connect() as connection:
        return int(connection.execute(select(func.sum(ledger.total_tokens))).scalar() or 0)


def _reserve(cp: ControlPlane, identity: Identity = ALICE) -> Reservation | None:
    try:
        return cp.reserve_tokens(identity, "small", input_tokens=60, max_output_tokens=40)
    except TokenBudgetExhausted:
        return None


def test_32_threads_never_exceed_the_ceiling(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=1_000)
    barrier = threading.Barrier(32)

    def attempt(_: int) -> Reservation | None:
        barrier.wait()  # all 32 hit a window that does not exist yet
        return _reserve(cp)

    with ThreadPoolExecutor(32) as pool:
        held = [r for r in pool.map(attempt, range(32)) if r is not None]
    assert len(held) == 10  # 10 x 100 tokens fit in 1,000
    assert _window_totals(cp)[1] == 1_000
    for reservation in held:
        cp.settle(reservation, TokenUsage(input_tokens=60, output_tokens=15))
    used, reserved, _, _ = _window_totals(cp)
    assert (used, reserved) == (750, 0)
    assert _ledger_tokens(cp) == used


async def test_32_async_tasks_never_exceed_the_ceiling(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    await acp.set_token_budget(ACME, "hour", max_tokens=1_000)

    async def attempt() -> Reservation | None:
        try:
            return await acp.reserve_tokens(ALICE, "small", input_tokens=60, max_output_tokens=40)
        except TokenBudgetExhausted:
            return None

    held = [r for r in await asyncio.gather(*(attempt() for _ in range(32))) if r is not None]
    assert len(held) == 10
    for reservation in held:
        await acp.settle(reservation, TokenUsage(60, 40))
    budgets = await acp.list_token_budgets()
    assert len(budgets) == 1


def _reserve_in_process(url: str, barrier: Any) -> int:
    barrier.wait()
    with ControlPlane.open(url, migrate="verify") as cp:
        cp.set_prices(PRICES)
        return sum(_reserve(cp) is not None for _ in range(8))


@pytest.mark.slow
def test_4_processes_never_exceed_the_ceiling(cp: ControlPlane, database: TestDatabase) -> None:
    cp.set_token_budget(ACME, "month", max_tokens=1_000)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            admitted = sum(
                f.result(timeout=180)
                for f in [
                    pool.submit(_reserve_in_process, database.url_string, barrier) for _ in range(4)
                ]
            )
    assert admitted == 10
    assert _window_totals(cp)[1] == 1_000


def test_overlapping_budgets_hold_all_or_none(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000)
    cp.set_token_budget(ALICE, "day", max_tokens=150)
    assert _reserve(cp) is not None  # 100 of alice's 150
    with pytest.raises(TokenBudgetExhausted) as raised:
        cp.reserve_tokens(ALICE, "small", input_tokens=60, max_output_tokens=40)
    assert "user=alice" in str(raised.value)
    assert raised.value.limit.startswith("max_tokens=150")
    assert _window_totals(cp)[1] == 200  # 100 on the org budget, 100 on alice's: nothing more
    bob = cp.reserve_tokens(
        Identity(org="acme", user="bob"), "small", input_tokens=60, max_output_tokens=40
    )
    assert len(bob.holds) == 1  # only the org budget covers bob


def test_settle_release_and_record_usage_count_once(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000, max_cost_usd="1")
    reservation = cp.reserve_tokens(
        ALICE, "small", input_tokens=100, max_output_tokens=100, idempotency_key="r1"
    )
    assert (
        cp.reserve_tokens(
            ALICE, "small", input_tokens=100, max_output_tokens=100, idempotency_key="r1"
        )
        == reservation
    )
    first = cp.settle(reservation, TokenUsage(100, 50))
    assert cp.settle(reservation, TokenUsage(100, 50)) == first
    other = cp.reserve_tokens(ALICE, "small", input_tokens=10, max_output_tokens=10)
    assert cp.release(other).status == "released"
    assert cp.release(other).status == "released"
    usage = TokenUsage(input_tokens=1_000, output_tokens=0)
    recorded = cp.record_usage(ALICE, "small", usage, idempotency_key="u1")
    assert cp.record_usage(ALICE, "small", usage, idempotency_key="u1") == recorded
    used, reserved, cost, _ = _window_totals(cp)
    assert (used, reserved) == (1_150, 0)
    assert cost == Decimal("0.0002") + Decimal("0.001")
    assert _ledger_tokens(cp) == used


def test_record_usage_is_never_lost_and_blocks_later_reservations(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=100)
    with pytest.raises(TokenBudgetExhausted):
        cp.record_usage(ALICE, "small", TokenUsage(input_tokens=150, output_tokens=0))
    assert _ledger_tokens(cp) == 150
    assert _reserve(cp) is None


def test_exact_money_and_big_counters(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "lifetime", max_cost_usd="0.40", max_tokens=2**40)
    for _ in range(100):  # 1,000 input tokens at $4 per million = $0.004
        cp.record_usage(ACME, "cheap", TokenUsage(input_tokens=1_000, output_tokens=0))
    assert _window_totals(cp)[2] == Decimal("0.400000000")
    with pytest.raises(TokenBudgetExhausted):
        cp.reserve_tokens(ACME, "cheap", input_tokens=1, max_output_tokens=0)
    cp.update_token_budget(cp.list_token_budgets()[0].id, max_cost_usd=None)
    big = 2**31 + 7
    cp.record_usage(ACME, "cheap", TokenUsage(input_tokens=big, output_tokens=0))
    assert _ledger_tokens(cp) == 100_000 + big
    assert _window_totals(cp)[0] == 100_000 + big


def test_models_and_bad_input_are_refused_before_anything_is_written(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000, denied_models=["cheap"])
    with pytest.raises(ModelNotAllowedError):
        cp.reserve_tokens(ACME, "cheap", input_tokens=1, max_output_tokens=1)
    with pytest.raises(UnknownModelError, match="no price for 'gpt-9'"):
        cp.reserve_tokens(ACME, "gpt-9", input_tokens=1, max_output_tokens=1)
    with pytest.raises(InvalidInputError, match="input_tokens"):
        cp.reserve_tokens(ACME, "small", input_tokens=-1, max_output_tokens=1)
    with pytest.raises(InvalidInputError, match="total_tokens"):
        TokenUsage(input_tokens=10, output_tokens=5, total_tokens=16)
    with pytest.raises(InvalidInputError, match="period"):
        cp.set_token_budget(ACME, "fortnight", max_tokens=1)
    with pytest.raises(TokenBudgetExistsError):
        cp.set_token_budget(ACME, "day", max_tokens=1)
    assert _window_totals(cp) == (0, 0, Decimal(0), Decimal(0))
    assert _ledger_tokens(cp) == 0


def test_expired_holds_are_released_once(cp: ControlPlane) -> None:
    from datetime import timedelta

    cp.set_token_budget(ACME, "day", max_tokens=1_000)
    cp.reserve_tokens(
        ALICE, "small", input_tokens=60, max_output_tokens=40, ttl=timedelta(microseconds=1)
    )
    assert cp.release_expired_holds() == 1
    assert cp.release_expired_holds() == 0
    assert _window_totals(cp)[1] == 0


def test_token_guard_settles_releases_and_never_loses_usage(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000)
    with cp.token_guard(ALICE, "small", input_tokens=100, max_output_tokens=100) as guard:
        assert guard.reservation.reserved_tokens == 200
        guard.settle(TokenUsage(100, 10))
    with (
        pytest.raises(RuntimeError, match="model failed"),
        cp.token_guard(ALICE, "small", input_tokens=100, max_output_tokens=100),
    ):
        raise RuntimeError("model failed")
    with cp.token_guard(ALICE, "small", input_tokens=100, max_output_tokens=100):
        pass  # ended without settling: recorded at the reserved worst case
    used, reserved, _, _ = _window_totals(cp)
    assert (used, reserved) == (110 + 200, 0)


async def test_async_token_guard(async_control_plane: AsyncControlPlane) -> None:
    async_control_plane.set_prices(PRICES)
    await async_control_plane.set_token_budget(ACME, "day", max_tokens=150)
    async with async_control_plane.token_guard(
        ALICE, "small", input_tokens=50, max_output_tokens=50
    ) as guard:
        await guard.settle(TokenUsage(50, 50))
    with pytest.raises(TokenBudgetExhausted):
        async with async_control_plane.token_guard(
            ALICE, "small", input_tokens=50, max_output_tokens=50
        ):
            pass


def test_usage_report_and_cli(cp: ControlPlane, database: TestDatabase) -> None:
    from typer.testing import CliRunner

    from agent_control_plane.cli import app

    cp.set_token_budget(ACME, "day", max_tokens=10_000)
    cp.record_usage(ALICE, "small", TokenUsage(100, 50))
    cp.record_usage(ALICE, "cheap", TokenUsage(1_000, 0))
    cp.record_usage(Identity(org="acme", user="bob"), "small", TokenUsage(10, 5))
    by_user = cp.token_usage(["user", "model"])
    assert [(r["user"], r["model"], r["total_tokens"]) for r in by_user] == [
        ("alice", "cheap", 1_000),
        ("alice", "small", 150),
        ("bob", "small", 15),
    ]
    assert by_user[0]["cost_usd"] == Decimal("0.004")
    (day,) = cp.token_usage(["day"])
    assert len(day["day"]) == 10
    assert day["requests"] == 3
    runner = CliRunner()
    url = ["--url", database.url_string]
    result = runner.invoke(app, ["tokens", "report", "--group-by", "model", "--csv", *url])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == (
        "model,requests,input_tokens,output_tokens,total_tokens,cost_usd"
    )
    assert "small,2,110,55,165," in result.output
    result = runner.invoke(app, ["budgets", "--json", *url])
    (status,) = __import__("json").loads(result.output)
    assert status["used"]["tokens"] == 1_165
    assert status["remaining"]["tokens"] == 10_000 - 1_165


def test_rolling_windows_count_recent_buckets_exactly_under_concurrency(cp: ControlPlane) -> None:
    cp.set_token_budget(ACME, "rolling:24h", max_tokens=1_000)
    barrier = threading.Barrier(16)

    def attempt(_: int) -> Reservation | None:
        barrier.wait()
        return _reserve(cp)

    with ThreadPoolExecutor(16) as pool:
        held = [r for r in pool.map(attempt, range(16)) if r is not None]
    assert len(held) == 10
    for reservation in held:
        cp.settle(reservation, TokenUsage(60, 40))
    with pytest.raises(TokenBudgetExhausted, match="rolling:24h"):
        cp.reserve_tokens(ALICE, "small", input_tokens=1, max_output_tokens=0)
    (status,) = cp.token_budget_status()
    assert (status["used"]["tokens"], status["remaining"]["tokens"]) == (1_000, 0)
    with pytest.raises(InvalidInputError, match="at least one minute"):
        cp.set_token_budget(ACME, "rolling:10s", max_tokens=1)


def test_rolling_buckets_are_conservative() -> None:
    from datetime import UTC, datetime, timedelta

    from agent_control_plane.rules.tokens import rolling_bucket

    now = datetime(2026, 11, 25, 13, 37, tzinfo=UTC)
    current, oldest = rolling_bucket(timedelta(hours=24), now)
    assert current == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert oldest == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 24 h and up to one hour more
    assert now - oldest >= timedelta(hours=24)


MODEL_POLICY = {
    "tiers": {"premium": ["big-*"], "standard": ["small", "cheap"]},
    "action_tiers": {"default": ["standard"], "always_approve": ["premium", "standard"]},
    "overrides": [{"identity": {"org": "acme", "user": "root"}, "tiers": ["premium"]}],
}


def test_model_tiers_and_overrides_are_enforced_before_holding(cp: ControlPlane) -> None:
    cp.set_prices({**PRICES, "big-1": {"input": "10", "output": "30"}})
    cp.set_token_budget(ACME, "day", max_tokens=100_000)
    cp.set_model_policy(MODEL_POLICY)
    assert cp.reserve_tokens(ALICE, "small", input_tokens=1, max_output_tokens=1)
    with pytest.raises(ModelNotAllowedError, match="tier 'premium'"):
        cp.reserve_tokens(ALICE, "big-1", input_tokens=1, max_output_tokens=1)
    assert cp.reserve_tokens(
        ALICE, "big-1", input_tokens=1, max_output_tokens=1, action_tier="always_approve"
    )
    root = Identity(org="acme", user="root")
    assert cp.reserve_tokens(root, "big-1", input_tokens=1, max_output_tokens=1)
    with pytest.raises(ModelNotAllowedError, match="not allowed here"):
        cp.reserve_tokens(root, "small", input_tokens=1, max_output_tokens=1)
    with pytest.raises(ModelNotAllowedError, match="action tier 'blocked'"):
        cp.reserve_tokens(
            ALICE, "small", input_tokens=1, max_output_tokens=1, action_tier="blocked"
        )
    assert _window_totals(cp)[1] == 6  # three holds of 2 tokens; refusals held nothing
    with pytest.raises(InvalidInputError, match="unknown tiers"):
        cp.set_model_policy({"tiers": {"a": ["x"]}, "action_tiers": {"default": ["b"]}})
    cp.set_model_policy(None)
    assert cp.reserve_tokens(ALICE, "big-1", input_tokens=1, max_output_tokens=1)


def test_soft_limits_warn_without_refusing(
    cp: ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=1000, max_requests=100, soft_limit_ratio=0.8)
    first = cp.reserve_tokens(ACME, "small", input_tokens=500, max_output_tokens=200)
    assert first.warnings == ()
    with caplog.at_level("WARNING", logger="agent_control_plane.tokens"):
        second = cp.reserve_tokens(ACME, "small", input_tokens=100, max_output_tokens=50)
    assert len(second.warnings) == 1
    assert "tokens 850 of 1000 is past its soft limit (80%)" in second.warnings[0]
    assert caplog.messages == list(second.warnings)
    [status] = cp.token_budget_status()
    assert status["soft_limit_reached"] == ["tokens"]
    cp.release(second)
    [status] = cp.token_budget_status()
    assert status["soft_limit_reached"] == []
    record = cp.record_usage(ACME, "small", TokenUsage(150, 0))
    assert "tokens 850 of 1000" in record.warnings[0]


def test_soft_limits_reached_rule() -> None:
    limits: dict[str, int | Decimal | None] = {
        "tokens": 100,
        "cost_usd": Decimal("1.00"),
        "requests": None,
    }
    consumed: dict[str, int | Decimal] = {"tokens": 80, "cost_usd": Decimal("0.79"), "requests": 5}
    assert soft_limits_reached(limits, consumed, Decimal("0.8")) == ["tokens"]
    assert soft_limits_reached(limits, consumed, None) == []
    assert soft_limits_reached(limits, consumed, Decimal("0.5")) == ["tokens", "cost_usd"]
