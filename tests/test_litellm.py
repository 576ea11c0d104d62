"""The LiteLLM callback, with the real litellm package and its mock_response (no network)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

# Before litellm is imported: its model cost map comes from the installed package, not the web.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ModelNotAllowedError, TokenBudgetExhausted
from agent_control_plane.integrations.litellm_callback import (
    AcpBudgetCallback,
    LiteLLMCallBlocked,
)
from agent_control_plane.rules.tokens import Identity, PriceTable, UnknownModelError

MODEL = "gpt-4o-mini"
PRICES = {MODEL: {"input": "1", "output": "2"}, "gpt-4o": {"input": "5", "output": "15"}}
ACME = Identity(org="acme")
MESSAGES = [{"role": "user", "content": "Summarise ticket 4711"}]


@pytest.fixture
def cp(control_plane: ControlPlane) -> ControlPlane:
    control_plane.set_prices(PRICES)
    return control_plane


@pytest.fixture
def register() -> Iterator[Any]:
    """Install callbacks for one test only: litellm's callback lists are process-global."""
    installed: list[AcpBudgetCallback] = []

    def install(callback: AcpBudgetCallback) -> AcpBudgetCallback:
        installed.append(callback.install())
        return callback

    yield install
    for callback in installed:
        callback.uninstall()


def _summary(status: list[dict[str, Any]], usage: list[dict[str, Any]]) -> tuple[int, ...]:
    """(tokens used, tokens reserved, requests used, tokens in the ledger) over all budgets."""
    used = sum(row["used"]["tokens"] for row in status)
    reserved = sum(row["reserved"]["tokens"] for row in status)
    requests = sum(row["used"]["requests"] for row in status)
    return used, reserved, requests, sum(row["total_tokens"] for row in usage)


def _totals(cp: ControlPlane) -> tuple[int, ...]:
    return _summary(cp.token_budget_status(), cp.token_usage(group_by=["model"]))


def _complete(**extra: Any) -> Any:
    arguments: dict[str, Any] = {"mock_response": "Done.", "max_tokens": 50, **extra}
    return litellm.completion(model=MODEL, messages=MESSAGES, **arguments)


def test_a_completion_is_held_then_settled_with_the_reported_usage(
    cp: ControlPlane, register: Any
) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000)
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    response = _complete()
    assert callback.wait_idle(10)
    reported = response.usage.total_tokens
    assert reported > 0
    assert _totals(cp) == (reported, 0, 1, reported)


def test_a_completion_over_budget_never_runs_and_holds_nothing(
    cp: ControlPlane, register: Any
) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=40)
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    with pytest.raises(LiteLLMCallBlocked) as blocked:
        _complete()  # prompt + 50 output tokens cannot fit in 40
    assert isinstance(blocked.value.error, TokenBudgetExhausted)
    assert "max_tokens=40" in str(blocked.value)
    assert callback.outstanding == 0
    assert _totals(cp) == (0, 0, 0, 0)


def test_a_failed_completion_releases_its_hold(cp: ControlPlane, register: Any) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000)
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    with pytest.raises(litellm.exceptions.InternalServerError):
        _complete(mock_response=Exception("provider down"))
    assert callback.wait_idle(10)
    assert _totals(cp) == (0, 0, 0, 0)


def test_each_call_pays_for_the_identity_in_its_metadata(cp: ControlPlane, register: Any) -> None:
    alice, bob = Identity(org="acme", user="alice"), Identity(org="acme", user="bob")
    cp.set_token_budget(alice, "day", max_tokens=10_000)
    cp.set_token_budget(bob, "day", max_tokens=10)
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    _complete(metadata={"acp_identity": {"org": "acme", "user": "alice"}})
    with pytest.raises(LiteLLMCallBlocked):
        _complete(metadata={"acp_identity": bob})
    assert callback.wait_idle(10)
    rows = cp.token_usage(group_by=["user"])
    assert [row["user"] for row in rows] == ["alice"]


def test_concurrent_completions_never_pass_the_ceiling(cp: ControlPlane, register: Any) -> None:
    cp.set_token_budget(ACME, "day", max_requests=5)
    callback = register(AcpBudgetCallback(cp, identity=ACME))

    def call(_: int) -> bool:
        try:
            _complete()
        except LiteLLMCallBlocked:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(call, range(16)))
    assert callback.wait_idle(20)
    used, reserved, requests, spent = _totals(cp)
    assert (admitted, requests, reserved) == (5, 5, 0)
    assert used == spent


async def test_acompletion_is_blocked_with_acps_own_error(cp: ControlPlane, register: Any) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=10_000, denied_models=["gpt-4o"])
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    response = await litellm.acompletion(
        model=f"openai/{MODEL}", messages=MESSAGES, mock_response="Done.", max_tokens=50
    )
    with pytest.raises(ModelNotAllowedError):
        await litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="x")
    with pytest.raises(TokenBudgetExhausted):
        await litellm.acompletion(
            model=MODEL, messages=MESSAGES, mock_response="x", max_tokens=20_000
        )
    assert await asyncio.to_thread(callback.wait_idle, 10)
    reported = response.usage.total_tokens
    assert _totals(cp) == (reported, 0, 1, reported)
    # The provider prefix is litellm's routing detail: budgets and the ledger see the model.
    assert [row["model"] for row in cp.token_usage(group_by=["model"])] == [MODEL]


async def test_acompletion_with_an_async_control_plane(
    async_control_plane: AsyncControlPlane, register: Any
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    await acp.set_token_budget(ACME, "day", max_tokens=10_000)
    callback = register(AcpBudgetCallback(acp, identity=ACME))
    response = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, mock_response="Done.", max_tokens=50
    )
    with pytest.raises(litellm.exceptions.InternalServerError):
        await litellm.acompletion(
            model=MODEL, messages=MESSAGES, mock_response=Exception("down"), max_tokens=50
        )
    for _ in range(200):  # the async logging worker settles on this loop: yield to it
        if callback.outstanding == 0:
            break
        await asyncio.sleep(0.05)
    assert callback.outstanding == 0
    reported = response.usage.total_tokens
    totals = _summary(await acp.token_budget_status(), await acp.token_usage(group_by=["model"]))
    assert totals == (reported, 0, 1, reported)
    # A sync call cannot use an AsyncControlPlane: refused before the provider, clearly.
    with pytest.raises(LiteLLMCallBlocked, match="acompletion"):
        await asyncio.to_thread(_complete)


def test_models_missing_from_the_table_are_priced_from_litellms_cost_map(
    cp: ControlPlane,
) -> None:
    cp.set_prices({"house-model": {"input": "3", "output": "3"}}, fallback="litellm")
    reservation = cp.reserve_tokens(ACME, MODEL, input_tokens=1000, max_output_tokens=1000)
    info = litellm.get_model_info(MODEL)
    expected = (
        Decimal(str(info["input_cost_per_token"])) * 1000
        + Decimal(str(info["output_cost_per_token"])) * 1000
    )
    assert reservation.reserved_cost == expected
    house = cp.reserve_tokens(ACME, "house-model", input_tokens=1000, max_output_tokens=0)
    assert house.reserved_cost == Decimal("0.003")
    with pytest.raises(UnknownModelError, match="litellm cost map"):
        cp.reserve_tokens(ACME, "no-such-model-anywhere", input_tokens=1, max_output_tokens=1)


def test_a_price_file_can_name_the_fallback() -> None:
    table = PriceTable.of({"fallback": "litellm", "m": {"input": "1", "output": "1"}})
    assert table.fallback == "litellm"
    assert set(table.prices) == {"m"}
