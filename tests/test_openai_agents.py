"""OpenAI Agents SDK adapter: tool calls governed before they run, model usage budgeted."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    Runner,
    ToolInputGuardrailTripwireTriggered,
    WebSearchTool,
    function_tool,
)

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError, TokenBudgetExhausted
from agent_control_plane.integrations.openai_agents import AgentGovernance
from agent_control_plane.integrations.scripted_model import ScriptedModel, message, tool_call
from agent_control_plane.rules.tokens import Identity

POLICY: dict[str, Any] = {
    "name": "openai-agents",
    "tiers": {
        "unrestricted": ["look_up_order", "flaky_lookup"],
        "blocked": ["delete_customer"],
        "always_approve": ["issue_refund"],
    },
}
PRICES = {"gpt-test": {"input": "1", "output": "2"}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    agents.set_tracing_disabled(True)


class World:
    """What the tools really did."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.deleted: list[str] = []

    def agent(self, model: ScriptedModel) -> Agent[Any]:
        @function_tool
        def look_up_order(order: str) -> str:
            """Look an order up."""
            self.looked_up.append(order)
            return f"order {order}: 25.00 USD"

        @function_tool
        def delete_customer(customer: str) -> str:
            """Delete a customer."""
            self.deleted.append(customer)
            return "deleted"

        @function_tool
        def flaky_lookup(order: str) -> str:
            """Fail."""
            raise RuntimeError("warehouse offline")

        return Agent(
            name="support",
            instructions="Help.",
            model=model,
            tools=[look_up_order, delete_customer, flaky_lookup],
        )


async def _session(acp: AsyncControlPlane) -> uuid.UUID:
    opened = await acp.open_session(
        agent_id="support-bot", tenant="acme", policy=POLICY, max_cost=10, max_actions=10
    )
    return opened.id


async def test_allowed_tool_runs_and_is_recorded(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = await _session(acp)
    model = ScriptedModel(
        [[tool_call("look_up_order", "call_1", order="981")], [message("Order 981 is 25 USD.")]]
    )
    governance = AgentGovernance(acp, sid, model="gpt-test")
    result = await Runner.run(governance.agent(world.agent(model)), "order?")

    assert result.final_output == "Order 981 is 25 USD."
    assert world.looked_up == ["981"]
    assert model.tool_outputs() == ["order 981: 25.00 USD"]
    trail = [(e.kind, e.action, e.outcome) for e in await acp.events(sid)]
    assert trail[-2:] == [
        ("decision", "look_up_order", "allowed"),
        ("outcome", "look_up_order", "succeeded"),
    ]
    assert (await acp.get_session(sid)).actions_used == 1


async def test_blocked_tool_never_runs(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = await _session(acp)
    model = ScriptedModel(
        [[tool_call("delete_customer", "call_1", customer="c-7")], [message("I cannot.")]]
    )
    governance = AgentGovernance(acp, sid, model="gpt-test")
    result = await Runner.run(governance.agent(world.agent(model)), "go")

    assert result.final_output == "I cannot."
    assert world.deleted == []
    (shown,) = model.tool_outputs()
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in shown
    kinds = [(e.kind, e.outcome) for e in await acp.events(sid)]
    assert ("decision", "denied") in kinds
    assert not [k for k in kinds if k[0] == "outcome"]


async def test_stop_mode_ends_the_run(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = await _session(acp)
    model = ScriptedModel([[tool_call("delete_customer", "call_1", customer="c-7")]])
    governance = AgentGovernance(acp, sid, model="gpt-test", on_refusal="stop")
    with pytest.raises(ToolInputGuardrailTripwireTriggered):
        await Runner.run(governance.agent(world.agent(model)), "go")
    assert world.deleted == []


async def test_a_tool_exception_is_recorded_as_failed(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = await _session(acp)
    model = ScriptedModel(
        [[tool_call("flaky_lookup", "call_1", order="1")], [message("The lookup failed.")]]
    )
    governance = AgentGovernance(acp, sid, model="gpt-test")
    result = await Runner.run(governance.agent(world.agent(model)), "go")
    assert result.final_output == "The lookup failed."
    (shown,) = model.tool_outputs()
    assert "error occurred" in shown  # the SDK's own failure message still reaches the model
    (outcome,) = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert outcome.outcome == "failed"
    assert outcome.payload is not None
    assert outcome.payload["result"] == {"error": "RuntimeError", "message": "warehouse offline"}


async def test_usage_is_recorded_and_the_budget_enforced(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = await _session(acp)
    bot = Identity(org="acme", agent="support-bot")
    await acp.set_token_budget(bot, "day", max_tokens=200)
    model = ScriptedModel(
        [[tool_call("look_up_order", "call_1", order="981")], [message("done")]],
        input_tokens=100,
        output_tokens=20,
    )
    governance = AgentGovernance(acp, sid, model="gpt-test")
    agent = governance.agent(world.agent(model))
    # The second model call takes the day to 240 tokens: recorded, then the run stops.
    with pytest.raises(TokenBudgetExhausted):
        await Runner.run(agent, "go")
    (row,) = await acp.token_usage(group_by=["agent", "model"])
    assert (row["requests"], row["total_tokens"]) == (2, 240)
    assert row["cost_usd"] == Decimal("0.00028")  # 200 x $1/M in + 40 x $2/M out

    # The next run is refused before the model is called at all.
    later = ScriptedModel([[message("never")]])
    with pytest.raises(TokenBudgetExhausted):
        await Runner.run(governance.agent(world.agent(later)), "go")
    assert later.inputs == []


def test_sync_control_plane_and_run_sync(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    cp.set_prices(PRICES)
    sid = cp.open_session(agent_id="support-bot", policy=POLICY, max_cost=10, max_actions=10).id
    model = ScriptedModel(
        [
            [
                tool_call("look_up_order", "call_1", order="1"),
                tool_call("delete_customer", "call_2", customer="c-1"),
            ],
            [message("one done, one refused")],
        ]
    )
    governance = AgentGovernance(cp, sid, model="gpt-test")
    agent = governance.agent(world.agent(model))
    try:
        result = Runner.run_sync(agent, "go")
    finally:
        # run_sync runs on (and leaves open) the thread's default loop: close it here.
        policy = asyncio.get_event_loop_policy()
        policy.get_event_loop().close()
        policy.set_event_loop(None)
    assert result.final_output == "one done, one refused"
    assert (world.looked_up, world.deleted) == (["1"], [])
    (row,) = cp.token_usage(group_by=["agent"])
    assert (row["agent"], row["requests"], row["total_tokens"]) == ("support-bot", 2, 240)
    decisions = [(e.action, e.outcome) for e in cp.events(sid) if e.kind == "decision"]
    assert sorted(decisions) == [("delete_customer", "denied"), ("look_up_order", "allowed")]


async def test_a_tool_that_needs_approval_runs_once_approved(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    sid = await _session(acp)
    refunds: list[str] = []

    @function_tool
    def issue_refund(order: str) -> str:
        """Refund an order."""
        refunds.append(order)
        return f"refunded {order}"

    def run_with(model: ScriptedModel) -> Agent[Any]:
        return governance.agent(Agent(name="support", model=model, tools=[issue_refund]))

    governance = AgentGovernance(acp, sid, model="gpt-test")
    first = ScriptedModel([[tool_call("issue_refund", "call_1", order="9")], [message("wait")]])
    await Runner.run(run_with(first), "refund 9")
    (shown,) = first.tool_outputs()
    assert "A person must approve it first (ticket " in shown
    assert refunds == []
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items

    await acp.approve(ticket.id, "alice")
    retry = ScriptedModel([[tool_call("issue_refund", "call_2", order="9")], [message("done")]])
    await Runner.run(run_with(retry), "refund 9 now")
    assert retry.tool_outputs() == ["refunded 9"]
    assert refunds == ["9"]
    assert (await acp.get_ticket(ticket.id)).status == "consumed"


async def test_costs_actions_and_a_tool_that_raises(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    sid = await _session(acp)

    @function_tool(failure_error_function=None)
    def fragile(order: str) -> str:
        """Raise."""
        raise RuntimeError("disk full")

    governance = AgentGovernance(acp, sid, model="gpt-test", costs={"fragile": "0.25"})
    # Governed under another action name, which the policy lets through.
    agent = Agent(
        name="support",
        model=ScriptedModel([[tool_call("fragile", "call_1", order="1")]]),
        tools=[governance.tool(fragile, action="look_up_order")],
    )
    with pytest.raises(agents.UserError, match="disk full"):  # how the SDK ends the run
        await Runner.run(agent, "go")
    session = await acp.get_session(sid)
    assert session.cost_used == Decimal("0.25")
    trail = [(e.kind, e.action, e.outcome) for e in await acp.events(sid)][-2:]
    assert trail == [
        ("decision", "look_up_order", "allowed"),
        ("outcome", "look_up_order", "failed"),
    ]


async def test_usage_of_a_replayed_response_counts_once(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    sid = await _session(acp)
    governance = AgentGovernance(acp, sid, model="gpt-test")
    model = ScriptedModel([[message("hi")]])
    response = await model.get_response(None, "hi")
    agent = Agent(name="support", model="gpt-test")
    await governance.record_usage(agent, response)
    await governance.record_usage(agent, response)
    (row,) = await acp.token_usage(group_by=["model"])
    assert (row["model"], row["requests"], row["total_tokens"]) == ("gpt-test", 1, 120)


async def test_tools_outside_the_process_are_refused(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    governance = AgentGovernance(acp, await _session(acp))
    with pytest.raises(ConfigurationError, match="WebSearchTool"):
        governance.agent(Agent(name="a", tools=[WebSearchTool()]))
    with pytest.raises(ConfigurationError, match="on_refusal"):
        AgentGovernance(acp, uuid.uuid4(), on_refusal="ignore")  # type: ignore[arg-type]
