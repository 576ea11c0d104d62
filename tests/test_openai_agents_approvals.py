"""OpenAI Agents SDK native approvals: the SDK's interruptions, decided by ACP's tickets.

With ``approvals="native"`` a call that needs a person's approval interrupts the run
(``RunResult.interruptions``) instead of being refused; ``resolve_interruptions`` applies
the ticket's answer to the run state and the resumed run performs the call once, without
the model asking again. A blocked tool's body never runs (each tool appends to a list).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import agents
import pytest
from agents import Agent, Runner, RunState, Tool, function_tool

from agent_control_plane import AsyncControlPlane
from agent_control_plane.integrations.openai_agents import AgentGovernance
from agent_control_plane.integrations.scripted_model import ScriptedModel, message, tool_call
from tests.agents_helpers import counting_tools, ran

POLICY: dict[str, Any] = {
    "name": "native-approvals",
    "tiers": {
        "always_approve": ["issue_refund"],
        "blocked": ["delete_customer"],
        "unrestricted": ["look_up_order"],
    },
}
PRICES = {"gpt-test": {"input": "1", "output": "2"}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    agents.set_tracing_disabled(True)


class Refunds:
    """The side effects: what really ran."""

    def __init__(self) -> None:
        self.paid: list[str] = []
        self.deleted: list[str] = []

    def tools(self) -> list[Tool]:
        @function_tool
        def issue_refund(order: str) -> str:
            """Refund an order."""
            self.paid.append(order)
            return f"refunded {order}"

        @function_tool
        def delete_customer(customer: str) -> str:
            """Delete a customer."""
            self.deleted.append(customer)
            return "deleted"

        return [issue_refund, delete_customer]


async def _setup(acp: AsyncControlPlane) -> tuple[uuid.UUID, AgentGovernance]:
    acp.set_prices(PRICES)
    session = await acp.open_session(
        agent_id="support-bot", tenant="acme", policy=POLICY, max_cost=10, max_actions=10
    )
    return session.id, AgentGovernance(acp, session.id, model="gpt-test", approvals="native")


def _refund_then(text: str) -> ScriptedModel:
    return ScriptedModel([[tool_call("issue_refund", "call_1", order="9")], [message(text)]])


async def test_an_approved_call_runs_once_when_the_run_resumes(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid, governance = await _setup(acp)
    world = Refunds()
    model = _refund_then("Refunded order 9.")
    agent = governance.agent(Agent(name="support", model=model, tools=world.tools()))

    result = await Runner.run(agent, "refund order 9")
    (interruption,) = result.interruptions
    assert (interruption.name, interruption.call_id) == ("issue_refund", "call_1")
    assert world.paid == []
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items

    state = result.to_state()
    still = await governance.resolve_interruptions(state)
    assert [item.call_id for item in still] == ["call_1"]  # nobody has answered yet

    await acp.approve(ticket.id, "alice")
    assert await governance.resolve_interruptions(state) == []
    resumed = await Runner.run(agent, state)

    assert resumed.final_output == "Refunded order 9."
    assert world.paid == ["9"]
    assert len(model.inputs) == 2  # the model never had to ask again
    assert (await acp.get_ticket(ticket.id)).status == "consumed"
    trail = [(e.kind, e.outcome) for e in await acp.events(sid) if e.kind != "session.opened"]
    assert trail == [
        ("decision", "needs_approval"),
        ("approval.approved", "approved"),
        ("decision", "allowed"),
        ("outcome", "succeeded"),
    ]


async def test_approving_in_the_sdk_alone_does_not_run_it(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid, governance = await _setup(acp)
    world = Refunds()
    model = _refund_then("Still waiting for approval.")
    agent = governance.agent(Agent(name="support", model=model, tools=world.tools()))

    result = await Runner.run(agent, "refund order 9")
    state = result.to_state()
    for item in state.get_interruptions():
        state.approve(item)  # the application approves; ACP's ticket is still pending
    resumed = await Runner.run(agent, state)

    assert resumed.final_output == "Still waiting for approval."
    assert world.paid == []
    (shown,) = model.tool_outputs()
    assert "A person must approve it first (ticket " in shown
    (ticket,) = (await acp.list_tickets(session_id=sid)).items
    assert ticket.status == "pending"


async def test_a_denied_ticket_rejects_the_call(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    sid, governance = await _setup(acp)
    world = Refunds()
    model = _refund_then("The refund was declined.")
    agent = governance.agent(Agent(name="support", model=model, tools=world.tools()))

    result = await Runner.run(agent, "refund order 9")
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items
    await acp.deny(ticket.id, "bob", reason="not eligible")
    state = result.to_state()
    assert await governance.resolve_interruptions(state) == []
    resumed = await Runner.run(agent, state)

    assert resumed.final_output == "The refund was declined."
    assert world.paid == []
    (shown,) = model.tool_outputs()
    assert f"refused issue_refund (denied: approval.denied:{ticket.id})" in shown


async def test_a_run_resumed_in_another_process(async_control_plane: AsyncControlPlane) -> None:
    """The state is saved as JSON; a new governance and a new agent resume it."""
    acp = async_control_plane
    sid, governance = await _setup(acp)
    world = Refunds()
    first = governance.agent(
        Agent(name="support", model=_refund_then("unused"), tools=world.tools())
    )
    saved = (await Runner.run(first, "refund order 9")).to_state().to_string()
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items
    await acp.approve(ticket.id, "alice")

    later = AgentGovernance(acp, sid, model="gpt-test", approvals="native")
    model = ScriptedModel([[message("Refunded order 9.")]])
    agent = later.agent(Agent(name="support", model=model, tools=world.tools()))
    state = await RunState.from_string(agent, saved)
    assert await later.resolve_interruptions(state) == []
    resumed = await Runner.run(agent, state)

    assert resumed.final_output == "Refunded order 9."
    assert world.paid == ["9"]
    assert (await acp.get_ticket(ticket.id)).status == "consumed"


async def test_blocked_and_allowed_calls_do_not_interrupt(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid, governance = await _setup(acp)
    world = Refunds()
    model = ScriptedModel(
        [[tool_call("delete_customer", "call_1", customer="c-7")], [message("I may not.")]]
    )
    agent = governance.agent(Agent(name="support", model=model, tools=world.tools()))
    result = await Runner.run(agent, "delete c-7")

    assert result.interruptions == []
    assert result.final_output == "I may not."
    assert world.deleted == []
    (shown,) = model.tool_outputs()
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in shown
    decisions = [e.outcome for e in await acp.events(sid) if e.kind == "decision"]
    assert decisions == ["denied"]  # decided once: the guardrail used the approval check's


async def test_a_tools_own_approval_is_left_to_the_application(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid, governance = await _setup(acp)
    looked_up: list[str] = []

    @function_tool(needs_approval=True)
    def look_up_order(order: str) -> str:
        """Look an order up."""
        looked_up.append(order)
        return f"order {order}"

    model = ScriptedModel([[tool_call("look_up_order", "call_1", order="1")], [message("ok")]])
    agent = governance.agent(Agent(name="support", model=model, tools=[look_up_order]))
    result = await Runner.run(agent, "order 1?")
    state = result.to_state()
    (waiting,) = await governance.resolve_interruptions(state)  # no ACP ticket: yours
    state.approve(waiting)
    assert (await Runner.run(agent, state)).final_output == "ok"
    assert looked_up == ["1"]
    decisions = [e.outcome for e in await acp.events(sid) if e.kind == "decision"]
    assert decisions == ["allowed"]


async def test_an_mcp_tool_waits_for_its_ticket_and_runs_once(
    async_control_plane: AsyncControlPlane, tmp_path: Path
) -> None:
    acp = async_control_plane
    acp.set_prices(PRICES)
    policy = {"name": "mcp-approvals", "tiers": {"always_approve": ["refund"]}}
    session = await acp.open_session(agent_id="bot", policy=policy, max_cost=10, max_actions=10)
    governance = AgentGovernance(acp, session.id, model="gpt-test", approvals="native")
    log = tmp_path / "ran.jsonl"
    model = ScriptedModel(
        [[tool_call("refund", "call_1", order="o-1", amount="5")], [message("Refunded.")]]
    )
    async with counting_tools(log) as server:
        agent = governance.agent(Agent(name="payer", model=model, mcp_servers=[server]))
        result = await Runner.run(agent, "refund o-1")
        assert [item.name for item in result.interruptions] == ["refund"]
        assert not log.exists()  # the server has not seen it
        (ticket,) = (await acp.list_tickets(session_id=session.id, status="pending")).items
        await acp.approve(ticket.id, "alice")
        state = result.to_state()
        assert await governance.resolve_interruptions(state) == []
        resumed = await Runner.run(agent, state)

    assert resumed.final_output == "Refunded."
    assert ran(log) == [{"tool": "refund", "order": "o-1", "amount": "5"}]
