"""The LiteLLM callback, with the real litellm package and its mock_response (no network)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

# Before litellm is imported: its model cost map comes from the installed package, not the web.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
import pytest
from litellm.llms.custom_llm import CustomLLM
from litellm.router import Router
from litellm.types.utils import ModelResponse, Usage

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    GovernanceBusyError,
    ModelNotAllowedError,
    TokenBudgetExhausted,
    UngovernedCallError,
)
from agent_control_plane.integrations.litellm_callback import (
    AcpBudgetCallback,
    LiteLLMCallBlocked,
)
from agent_control_plane.models import TokenBudgetStatus, TokenUsageRow
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


def _summary(status: list[TokenBudgetStatus], usage: list[TokenUsageRow]) -> tuple[int, ...]:
    """(tokens used, tokens reserved, requests used, tokens in the ledger) over all budgets."""
    used = sum(row.used.tokens for row in status)
    reserved = sum(row.reserved.tokens for row in status)
    requests = sum(row.used.requests for row in status)
    return used, reserved, requests, sum(row.total_tokens for row in usage)


def _totals(cp: ControlPlane) -> tuple[int, ...]:
    return _summary(cp.token_budget_status(), cp.token_usage(group_by=["model"]))


def _totals_become(cp: ControlPlane, expected: tuple[int, ...], timeout: float = 10) -> bool:
    """A call ACP never held is recorded when LiteLLM's background worker reports it."""
    deadline = time.monotonic() + timeout
    while _totals(cp) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return _totals(cp) == expected


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


# -- every entry point that spends tokens ------------------------------------------------

EMBEDDER = "text-embedding-3-small"
INSTRUCT = "gpt-3.5-turbo-instruct"
EVERY_PRICE = {
    **PRICES,
    EMBEDDER: {"input": "0.02", "output": "0"},
    INSTRUCT: {"input": "1.5", "output": "2"},
    "house-llm": {"input": "1", "output": "1"},
}


async def _consume(stream: Any) -> Any:
    return [chunk async for chunk in stream]


def _router() -> Any:
    deployment = {"model": MODEL, "mock_response": "Done."}
    return Router(model_list=[{"model_name": "team-model", "litellm_params": deployment}])


# Each entry point the way LiteLLM's docs call it, with mock_response (no network): a
# function of the output tokens the call may use (async ones return a coroutine).
ENTRY_POINTS: dict[str, Any] = {
    "completion": lambda out: litellm.completion(
        model=MODEL, messages=MESSAGES, mock_response="Done.", max_tokens=out
    ),
    "acompletion": lambda out: litellm.acompletion(
        model=MODEL, messages=MESSAGES, mock_response="Done.", max_tokens=out
    ),
    "text_completion": lambda out: litellm.text_completion(
        model=INSTRUCT, prompt="Summarise ticket 4711", mock_response="Done.", max_tokens=out
    ),
    "atext_completion": lambda out: litellm.atext_completion(
        model=INSTRUCT, prompt="Summarise ticket 4711", mock_response="Done.", max_tokens=out
    ),
    "aresponses": lambda out: litellm.aresponses(
        model=MODEL, input="Summarise ticket 4711", mock_response="Done.", max_output_tokens=out
    ),
    "aembedding": lambda out: litellm.aembedding(
        model=EMBEDDER, input=["ticket 4711 " * out], mock_response=[0.1, 0.2]
    ),
    "stream": lambda out: list(
        litellm.completion(
            model=MODEL, messages=MESSAGES, mock_response="Done.", max_tokens=out, stream=True
        )
    ),
    "astream": lambda out: _aconsume_stream(out),
    "router.completion": lambda out: _router().completion(
        model="team-model", messages=MESSAGES, max_tokens=out
    ),
    "router.acompletion": lambda out: _router().acompletion(
        model="team-model", messages=MESSAGES, max_tokens=out
    ),
    "router.aresponses": lambda out: _router().aresponses(
        model="team-model", input="Summarise ticket 4711", max_output_tokens=out
    ),
}


async def _aconsume_stream(out: int) -> Any:
    stream = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, mock_response="Done.", max_tokens=out, stream=True
    )
    return await _consume(stream)


def _call(name: str, out: int) -> Any:
    """Call an entry point as a program would: an async one inside asyncio.run."""
    result = ENTRY_POINTS[name](out)
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


@pytest.fixture
def every_price(cp: ControlPlane) -> ControlPlane:
    cp.set_prices(EVERY_PRICE)
    return cp


def _budgeted(cp: ControlPlane, register: Any, max_tokens: int) -> AcpBudgetCallback:
    """A daily budget of ``max_tokens`` for ACME, and a callback that charges ACME."""
    cp.set_token_budget(ACME, "day", max_tokens=max_tokens)
    return register(AcpBudgetCallback(cp, identity=ACME))  # type: ignore[no-any-return]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_is_held_and_settled_before_it_returns(
    every_price: ControlPlane, register: Any, entry: str
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 100_000)
    with ThreadPoolExecutor(1) as thread:  # asyncio.run needs a thread without a loop
        thread.submit(_call, entry, 50).result()
    if entry.startswith(("a", "router.a")) and entry != "astream":
        # Settled inside the call: nothing is left held once asyncio.run has returned.
        assert callback.outstanding == 0
    assert callback.wait_idle(10)
    used, reserved, requests, spent = _totals(cp)
    assert (reserved, requests) == (0, 1)
    assert used == spent > 0


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_over_budget_is_refused_before_the_provider(
    every_price: ControlPlane, register: Any, entry: str
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 200)
    with (
        ThreadPoolExecutor(1) as thread,
        pytest.raises((LiteLLMCallBlocked, TokenBudgetExhausted)) as refused,
    ):
        thread.submit(_call, entry, 5_000).result()
    error = refused.value.error if isinstance(refused.value, LiteLLMCallBlocked) else refused.value
    assert isinstance(error, TokenBudgetExhausted)
    assert callback.wait_idle(10)
    assert _totals(cp) == (0, 0, 0, 0)


def test_an_async_stream_is_settled_before_asyncio_run_returns(
    every_price: ControlPlane, register: Any
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 100_000)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(_call, "astream", 50).result()
    assert callback.outstanding == 0
    used, reserved, requests, spent = _totals(cp)
    assert (reserved, requests, used) == (0, 1, spent)


# -- calls LiteLLM gives no hook before the provider -----------------------------------


@pytest.mark.parametrize("entry", ["responses", "embedding"])
def test_a_sync_call_without_a_pre_call_hook_is_recorded_not_passed_silently(
    every_price: ControlPlane, register: Any, entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 200)
    call: Any = {
        "responses": lambda: litellm.responses(
            model=MODEL, input="Summarise ticket 4711", mock_response="Done."
        ),
        "embedding": lambda: litellm.embedding(
            model=EMBEDDER, input=["ticket 4711 " * 100], mock_response=[0.1, 0.2]
        ),
    }[entry]
    for _ in range(2):
        response = call()
    usage: Any = response.usage
    reported = usage.total_tokens or usage.prompt_tokens
    assert _totals_become(cp, (2 * reported, 0, 2, 2 * reported))
    assert callback.outstanding == 0
    used = 2 * reported
    assert "recorded after the fact" in caplog.text
    # What it spent counts against the budget: a hold for the rest of it plus one is refused.
    with pytest.raises(TokenBudgetExhausted):
        cp.reserve_tokens(ACME, MODEL, input_tokens=0, max_output_tokens=max(201 - used, 1))


class HouseLLM(CustomLLM):
    """A provider written the way LiteLLM's CustomLLM docs teach; counts its requests."""

    def __init__(self, *, announce: bool = False) -> None:
        super().__init__()
        self.requests = 0
        self.announce = announce

    def _answer(self) -> ModelResponse:
        self.requests += 1
        usage = Usage(prompt_tokens=12, completion_tokens=8, total_tokens=20)
        message = {"role": "assistant", "content": "Done."}
        return ModelResponse(choices=[{"message": message}], usage=usage)

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        if self.announce:  # as LiteLLM's own providers do before their request
            kwargs["logging_obj"].pre_call(input=kwargs["messages"], api_key=None)
        return self._answer()

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return self._answer()


@pytest.fixture
def house_llm() -> Iterator[HouseLLM]:
    provider = HouseLLM()
    saved = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "house", "custom_handler": provider}]
    yield provider
    litellm.custom_provider_map = saved


async def test_an_async_custom_llm_is_held_refused_and_settled(
    every_price: ControlPlane, register: Any, house_llm: HouseLLM
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 300)
    await litellm.acompletion(model="house/house-llm", messages=MESSAGES, max_tokens=50)
    assert callback.outstanding == 0
    assert _totals(cp) == (20, 0, 1, 20)
    with pytest.raises(TokenBudgetExhausted):
        await litellm.acompletion(model="house/house-llm", messages=MESSAGES, max_tokens=500)
    assert house_llm.requests == 1  # the refused call never reached the provider


def test_a_sync_custom_llm_that_announces_its_request_is_refused_before_it(
    every_price: ControlPlane, register: Any, house_llm: HouseLLM
) -> None:
    cp = every_price
    house_llm.announce = True
    cp.set_token_budget(ACME, "day", max_tokens=300)
    callback = register(AcpBudgetCallback(cp, identity=ACME))
    litellm.completion(model="house/house-llm", messages=MESSAGES, max_tokens=50)
    assert callback.wait_idle(10)
    assert _totals(cp) == (20, 0, 1, 20)
    with pytest.raises(LiteLLMCallBlocked):
        litellm.completion(model="house/house-llm", messages=MESSAGES, max_tokens=500)
    assert house_llm.requests == 1


def test_a_sync_custom_llm_that_does_not_announce_is_recorded_and_reported(
    every_price: ControlPlane,
    register: Any,
    house_llm: HouseLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 300)
    litellm.completion(model="house/house-llm", messages=MESSAGES, max_tokens=50)
    assert _totals_become(cp, (20, 0, 1, 20))
    assert callback.outstanding == 0
    assert "house-llm reached the provider with no hook" in caplog.text


class RelayLLM(CustomLLM):
    """LiteLLM's CustomLLM docs example: a provider that answers with litellm.completion."""

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Hi!")  # type: ignore[no-any-return]

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="Hi!")  # type: ignore[no-any-return]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_custom_llm_that_relays_to_litellm_is_counted_once(
    every_price: ControlPlane, register: Any, asynchronous: bool
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 100_000)
    saved = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "relay", "custom_handler": RelayLLM()}]
    try:
        if asynchronous:
            coroutine = litellm.acompletion(model="relay/house-llm", messages=MESSAGES)
            with ThreadPoolExecutor(1) as thread:
                response = thread.submit(asyncio.run, coroutine).result()
        else:
            response = litellm.completion(model="relay/house-llm", messages=MESSAGES)
    finally:
        litellm.custom_provider_map = saved
    assert callback.wait_idle(10)
    reported = response.usage.total_tokens
    assert _totals(cp) == (reported, 0, 1, reported)


async def test_calls_acp_cannot_price_are_refused(cp: ControlPlane, register: Any) -> None:
    cp.set_token_budget(ACME, "day", max_tokens=100_000)
    register(AcpBudgetCallback(cp, identity=ACME))
    with pytest.raises(UngovernedCallError, match="aimage_generation"):
        await litellm.aimage_generation(
            model="openai/dall-e-3", prompt="a unicorn", mock_response="x"
        )
    assert _totals(cp) == (0, 0, 0, 0)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_router_fallback_after_a_failure_is_held_too(
    every_price: ControlPlane, register: Any, asynchronous: bool
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 100_000)
    down = {"model": MODEL, "mock_response": Exception("provider down")}
    router = Router(
        model_list=[
            {"model_name": "primary", "litellm_params": down},
            {"model_name": "backup", "litellm_params": {"model": MODEL, "mock_response": "Ok"}},
        ],
        fallbacks=[{"primary": ["backup"]}],
    )
    with ThreadPoolExecutor(1) as thread:
        if asynchronous:
            call = router.acompletion(model="primary", messages=MESSAGES, max_tokens=50)
            response = thread.submit(asyncio.run, call).result()
        else:
            response = router.completion(model="primary", messages=MESSAGES, max_tokens=50)
    assert callback.wait_idle(10)
    reported = response.usage.total_tokens
    assert _totals(cp) == (reported, 0, 1, reported)


# -- LiteLLM's own HTTP providers, against a local stand-in for the OpenAI API -----------


class _OpenAIStandIn(BaseHTTPRequestHandler):
    """Answers /responses, /embeddings and /images/generations like the OpenAI API."""

    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.requests.append(self.path)
        answer: dict[str, Any]
        if self.path.endswith("/responses"):
            text = {"type": "output_text", "text": "Done.", "annotations": []}
            message = {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
            answer = {
                "id": f"resp_{len(self.requests)}",
                "object": "response",
                "created_at": 1,
                "status": "completed",
                "model": body["model"],
                "output": [message],
                "usage": {"input_tokens": 11, "output_tokens": 5, "total_tokens": 16},
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
            }
        else:
            vector = {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}
            answer = {
                "object": "list",
                "data": [vector],
                "model": body["model"],
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def openai_stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIStandIn)
    _OpenAIStandIn.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("entry", ["responses", "embedding"])
def test_sync_responses_and_embedding_on_an_http_provider_are_held_and_refused(
    every_price: ControlPlane, register: Any, entry: str, openai_stand_in: str
) -> None:
    cp = every_price
    callback = _budgeted(cp, register, 300)
    where: dict[str, Any] = {"api_base": openai_stand_in, "api_key": "sk-stand-in"}

    def call(size: int) -> Any:
        if entry == "responses":
            return litellm.responses(
                model=f"openai/{MODEL}", input="Summarise", max_output_tokens=size, **where
            )
        return litellm.embedding(model=f"openai/{EMBEDDER}", input=["ticket 4711 " * size], **where)

    response = call(50)
    assert callback.wait_idle(10)
    reported = response.usage.total_tokens
    assert _totals(cp) == (reported, 0, 1, reported)
    with pytest.raises((LiteLLMCallBlocked, TokenBudgetExhausted)) as refused:
        call(5_000)
    error = refused.value.error if isinstance(refused.value, LiteLLMCallBlocked) else refused.value
    assert isinstance(error, TokenBudgetExhausted)
    assert len(_OpenAIStandIn.requests) == 1  # the refused call never reached the provider
    assert callback.wait_idle(10)
    assert _totals(cp) == (reported, 0, 1, reported)


def test_a_sync_image_generation_is_refused_before_the_provider(
    cp: ControlPlane, register: Any, openai_stand_in: str
) -> None:
    register(AcpBudgetCallback(cp, identity=ACME))
    with pytest.raises(LiteLLMCallBlocked) as refused:
        litellm.image_generation(
            model="openai/dall-e-3", prompt="a unicorn", api_base=openai_stand_in, api_key="sk"
        )
    assert isinstance(refused.value.error, UngovernedCallError)
    assert _OpenAIStandIn.requests == []


class _CountingCallback(AcpBudgetCallback):
    """Counts the attempts the Router makes; the first ``outages`` reservations fail as
    they do while the database is busy."""

    def __init__(self, cp: ControlPlane, outages: int = 0) -> None:
        super().__init__(cp, identity=ACME)
        self.attempts = 0
        self.outages = outages

    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        self.attempts += 1
        return await super().async_pre_call_deployment_hook(kwargs, call_type)

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "reserve_tokens" and self.outages > 0:
            self.outages -= 1
            raise GovernanceBusyError("the database is busy")
        return await super()._run(method, *args, **kwargs)


@pytest.mark.parametrize("entry", ["router.acompletion", "router.aresponses"])
def test_the_router_takes_a_refusal_as_final(
    every_price: ControlPlane, register: Any, entry: str
) -> None:
    """LiteLLM's Router retries a failed attempt, with backoff, unless the error says it is
    final: a refusal is, so the Router makes one attempt and the caller has it at once."""
    cp = every_price
    cp.set_token_budget(ACME, "day", max_tokens=200)
    callback = register(_CountingCallback(cp))
    with ThreadPoolExecutor(1) as thread, pytest.raises(TokenBudgetExhausted):
        thread.submit(_call, entry, 5_000).result()
    assert callback.attempts == 1
    assert _totals(cp) == (0, 0, 0, 0)


def test_the_router_retries_an_outage(every_price: ControlPlane, register: Any) -> None:
    """An outage may pass: the Router keeps retrying it, and the attempt after it is held
    and settled as any other."""
    cp = every_price
    cp.set_token_budget(ACME, "day", max_tokens=100_000)
    callback = register(_CountingCallback(cp, outages=1))
    with ThreadPoolExecutor(1) as thread:
        thread.submit(_call, "router.acompletion", 50).result()
    assert callback.attempts == 2
    assert callback.wait_idle(10)
    used, reserved, requests, _spent = _totals(cp)
    assert (reserved, requests) == (0, 1)
    assert used > 0
