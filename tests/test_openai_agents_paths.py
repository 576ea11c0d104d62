"""OpenAI Agents SDK: every path an agent can act through is governed, or refused at wiring.

Each test drives a real ``Runner`` with a scripted model (no network): MCP server tools
(a real stdio MCP server), handoffs, agents used as tools, reused call ids, per-tool
risk, the user's own hooks, and tools that time out.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    AgentHooks,
    CodeInterpreterTool,
    FileSearchTool,
    Handoff,
    HostedMCPTool,
    ImageGenerationTool,
    RunContextWrapper,
    RunHooks,
    Runner,
    WebSearchTool,
    function_tool,
    handoff,
)

from agent_control_plane import AsyncControlPlane
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.integrations.openai_agents import AgentGovernance
from agent_control_plane.integrations.scripted_model import ScriptedModel, message, tool_call
from tests.agents_helpers import counting_tools, ran

PRICES = {"gpt-test": {"input": "1", "output": "2"}}
POLICY: dict[str, Any] = {
    "name": "agents-paths",
    "default": "deny",
    "tiers": {
        "unrestricted": ["echo", "read_file", "look_up_order", "slow_lookup", "ask_expert"],
        "blocked": ["delete_file", "delete_customer"],
        "auto_approve": ["wire_money", "send_note"],
    },
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    agents.set_tracing_disabled(True)


async def _session(acp: AsyncControlPlane, policy: dict[str, Any] = POLICY) -> uuid.UUID:
    acp.set_prices(PRICES)
    opened = await acp.open_session(
        agent_id="support-bot", tenant="acme", policy=policy, max_cost=10, max_actions=20
    )
    return opened.id


async def _trail(
    acp: AsyncControlPlane, sid: uuid.UUID
) -> list[tuple[str, str | None, str | None]]:
    return [
        (event.kind, event.action, event.outcome)
        for event in await acp.events(sid)
        if event.kind in ("decision", "outcome")
    ]


async def test_mcp_server_tools_are_governed_like_function_tools(
    async_control_plane: AsyncControlPlane, tmp_path: Path
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    log = tmp_path / "ran.jsonl"
    model = ScriptedModel(
        [
            [tool_call("delete_file", "call_1", path="secrets/key.txt")],
            [tool_call("echo", "call_2", text="hello")],
            [message("done")],
        ]
    )
    governance = AgentGovernance(acp, sid, model="gpt-test")
    # As the Agents SDK docs teach: a connected stdio server handed to the agent.
    async with counting_tools(log) as server:
        agent = Agent(name="files", model=model, mcp_servers=[server])
        result = await Runner.run(governance.agent(agent), "tidy up")

    assert result.final_output == "done"
    assert ran(log) == [{"tool": "echo", "text": "hello"}]  # delete_file never reached it
    refused, echoed = model.tool_outputs()[-2:]
    assert "refused delete_file (denied: tier.blocked:delete_file)" in refused
    assert "hello" in echoed
    assert await _trail(acp, sid) == [
        ("decision", "delete_file", "denied"),
        ("decision", "echo", "allowed"),
        ("outcome", "echo", "succeeded"),
    ]


HOSTED_TOOLS = [
    WebSearchTool(),
    FileSearchTool(vector_store_ids=["vs_1"]),
    CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}}),
    HostedMCPTool(
        tool_config={"type": "mcp", "server_label": "x", "server_url": "https://x.invalid"}
    ),
    ImageGenerationTool(tool_config={"type": "image_generation"}),
]


@pytest.mark.parametrize("hosted", HOSTED_TOOLS, ids=lambda tool: type(tool).__name__)
def test_hosted_tools_are_refused_wherever_they_sit(hosted: Any) -> None:
    governance = AgentGovernance(no_database(), uuid.uuid4())
    with pytest.raises(ConfigurationError, match=f"{type(hosted).__name__}.*provider"):
        governance.agent(Agent(name="a", tools=[hosted]))
    # Also on an agent the first one hands off to: that agent acts in the same run.
    specialist = Agent(name="specialist", tools=[hosted])
    with pytest.raises(ConfigurationError, match=type(hosted).__name__):
        governance.agent(Agent(name="triage", handoffs=[specialist]))
    with pytest.raises(ConfigurationError, match=type(hosted).__name__):
        governance.agent(Agent(name="triage", handoffs=[handoff(specialist)]))


def no_database() -> Any:
    """Wiring checks happen before any call: no database is touched by them."""
    return object.__new__(AsyncControlPlane)


@pytest.mark.parametrize("how", ["agent", "handoff()", "by hand"])
async def test_a_handed_off_agent_is_governed_and_its_usage_counted(
    async_control_plane: AsyncControlPlane, how: str
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    deleted: list[str] = []

    @function_tool
    def delete_customer(customer: str) -> str:
        """Delete a customer."""
        deleted.append(customer)
        return "deleted"

    specialist_model = ScriptedModel(
        [[tool_call("delete_customer", "call_2", customer="c-7")], [message("not allowed")]]
    )
    specialist = Agent(name="specialist", model=specialist_model, tools=[delete_customer])
    triage_model = ScriptedModel([[tool_call("transfer_to_specialist", "call_1")]])

    async def hand_over(context: RunContextWrapper[Any], arguments: str) -> Agent[Any]:
        return specialist

    routes: dict[str, Agent[Any] | Handoff[Any, Any]] = {
        "agent": specialist,
        "handoff()": handoff(specialist),
        "by hand": Handoff(
            tool_name="transfer_to_specialist",
            tool_description="Hand over to the specialist.",
            input_json_schema={"type": "object", "properties": {}, "additionalProperties": False},
            on_invoke_handoff=hand_over,
            agent_name="specialist",
        ),
    }
    triage = Agent(name="triage", model=triage_model, handoffs=[routes[how]])
    governance = AgentGovernance(acp, sid, model="gpt-test")

    result = await Runner.run(governance.agent(triage), "delete c-7")
    assert result.final_output == "not allowed"
    assert deleted == []
    assert ("decision", "delete_customer", "denied") in await _trail(acp, sid)
    (row,) = await acp.token_usage(group_by=["agent"])
    assert row["requests"] == 3  # triage once, the specialist twice


async def test_an_agent_used_as_a_tool_must_be_governed_too(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = AgentGovernance(acp, sid, model="gpt-test")
    expert = Agent(name="expert", model="gpt-test")
    ungoverned = expert.as_tool(tool_name="ask_expert", tool_description="Ask.")
    with pytest.raises(ConfigurationError, match=r"ask_expert.*governance\.agent"):
        governance.agent(Agent(name="lead", tools=[ungoverned]))

    # Governed inside and out: the expert's own tool calls are governed as well.
    deleted: list[str] = []

    @function_tool
    def delete_customer(customer: str) -> str:
        """Delete a customer."""
        deleted.append(customer)
        return "deleted"

    expert = Agent(
        name="expert",
        model=ScriptedModel(
            [[tool_call("delete_customer", "call_9", customer="c-1")], [message("refused")]]
        ),
        tools=[delete_customer],
    )
    lead = Agent(
        name="lead",
        model=ScriptedModel(
            [[tool_call("ask_expert", "call_1", input="delete c-1")], [message("asked")]]
        ),
        tools=[governance.agent(expert).as_tool(tool_name="ask_expert", tool_description="Ask.")],
    )
    result = await Runner.run(governance.agent(lead), "go")
    assert result.final_output == "asked"
    assert deleted == []
    trail = await _trail(acp, sid)
    assert ("decision", "ask_expert", "allowed") in trail
    assert ("decision", "delete_customer", "denied") in trail


async def test_a_model_that_reuses_call_ids_gets_every_call_governed(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    looked_up: list[str] = []

    @function_tool
    def look_up_order(order: str) -> str:
        """Look an order up."""
        looked_up.append(order)
        return f"order {order}"

    governance = AgentGovernance(acp, sid, model="gpt-test", costs={"look_up_order": "0.5"})
    # Many models number their calls per response: every run says call_0.
    for order in ["1", "1", "2"]:
        model = ScriptedModel(
            [[tool_call("look_up_order", "call_0", order=order)], [message("ok")]]
        )
        agent = Agent(name="support", model=model, tools=[look_up_order])
        result = await Runner.run(governance.agent(agent), f"order {order}?")
        assert result.final_output == "ok"

    assert looked_up == ["1", "1", "2"]
    session = await acp.get_session(sid)
    assert (session.actions_used, session.cost_used) == (3, Decimal("1.5"))
    decisions = [t for t in await _trail(acp, sid) if t[0] == "decision"]
    assert decisions == [("decision", "look_up_order", "allowed")] * 3


async def test_risk_weight_and_score_per_tool(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    policy = {**POLICY, "risk": {"max_weight": 0.5, "min_score": 0.7}}
    sid = await _session(acp, policy)
    done: list[str] = []

    @function_tool
    def send_note(text: str) -> str:
        """Send a note."""
        done.append(f"note {text}")
        return "sent"

    @function_tool
    def wire_money(amount: int) -> str:
        """Wire money."""
        done.append(f"wire {amount}")
        return "wired"

    governance = AgentGovernance(
        acp,
        sid,
        model="gpt-test",
        weights={"send_note": 0.1, "wire_money": 0.3},
        # A callable sees the tool's name and arguments: big wires are less certain.
        scores=lambda tool, arguments: 0.9 if arguments.get("amount", 0) < 1000 else 0.2,
    )
    model = ScriptedModel(
        [
            [
                tool_call("send_note", "call_1", text="hi"),
                tool_call("wire_money", "call_2", amount=10),
                tool_call("wire_money", "call_3", amount=5000),
            ],
            [message("two done, one waits")],
        ]
    )
    agent = Agent(name="ops", model=model, tools=[send_note, wire_money])
    await Runner.run(governance.agent(agent), "go")

    assert sorted(done) == ["note hi", "wire 10"]
    decisions = {
        (event.payload["args"].get("amount"), event.outcome, event.reason)
        for event in await acp.events(sid)
        if event.kind == "decision"
    }
    assert decisions == {
        (None, "allowed", "tier.auto_approve:send_note"),
        (10, "allowed", "tier.auto_approve:wire_money"),
        (5000, "needs_approval", "risk.min_score"),
    }
    weights = {
        (event.action, event.payload["weight"], event.payload["score"])
        for event in await acp.events(sid)
        if event.kind == "decision"
    }
    assert weights == {("send_note", 0.1, 0.9), ("wire_money", 0.3, 0.9), ("wire_money", 0.3, 0.2)}


async def test_the_users_own_hooks_and_acp_accounting_both_run(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    seen: list[str] = []

    class MyRunHooks(RunHooks[Any]):
        async def on_llm_end(
            self, context: RunContextWrapper[Any], agent: Any, response: Any
        ) -> None:
            seen.append(f"run:{agent.name}")

    class MyAgentHooks(AgentHooks[Any]):
        async def on_llm_end(
            self, context: RunContextWrapper[Any], agent: Any, response: Any
        ) -> None:
            seen.append(f"agent:{agent.name}")

        async def on_start(self, context: Any, agent: Any) -> None:
            seen.append("started")

    model = ScriptedModel([[message("hi")]], input_tokens=100, output_tokens=20)
    agent = Agent(name="support", model=model, hooks=MyAgentHooks())
    governance = AgentGovernance(acp, sid, model="gpt-test")
    await Runner.run(governance.agent(agent), "hello", hooks=MyRunHooks())

    assert sorted(seen) == ["agent:support", "run:support", "started"]
    (row,) = await acp.token_usage(group_by=["agent"])
    assert (row["requests"], row["total_tokens"]) == (1, 120)


async def test_a_tool_that_times_out_records_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)

    @function_tool(timeout=0.5)
    async def slow_lookup(order: str) -> str:
        """Never answers in time."""
        await asyncio.sleep(600)
        return "late"

    model = ScriptedModel([[tool_call("slow_lookup", "call_1", order="1")], [message("gave up")]])
    governance = AgentGovernance(acp, sid, model="gpt-test")
    result = await Runner.run(
        governance.agent(Agent(name="support", model=model, tools=[slow_lookup])), "go"
    )
    assert result.final_output == "gave up"
    assert "timed out" in model.tool_outputs()[0]
    assert await _trail(acp, sid) == [
        ("decision", "slow_lookup", "allowed"),
        ("outcome", "slow_lookup", "cancelled"),
    ]
