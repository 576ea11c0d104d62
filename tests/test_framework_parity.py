"""One policy file, the same decisions in every framework (tests/framework_scenario.py).

Each test has its framework's agent make the scenario's calls in order, through that
framework's ACP adapter and its own tool types, and compares ACP's trail with the
scenario call by call, and the tool bodies that ran with the allowed calls.

A call that needs approval is refused with the ticket named (the model is told) in every
framework here, so the run goes on to the next call; each adapter's native approval
flow (interrupts, ``needs_approval``, ``can_use_tool``, deferred tools) has its own tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ActionNotAllowed
from tests.databases import TestDatabase
from tests.framework_scenario import (
    CALLS,
    TOOL_NAMES,
    Tools,
    aopen_session,
    assert_same_decisions,
    observed,
    open_session,
)


@pytest.fixture
def cp(database: TestDatabase) -> Iterator[ControlPlane]:
    with ControlPlane.open(database.url_string) as opened:
        yield opened


def test_governed_decorator(cp: ControlPlane) -> None:
    sid, tools = open_session(cp), Tools()
    with cp.session_scope(sid):
        for call in CALLS:
            governed = cp.governed(call.tool)(getattr(tools, call.tool))
            if call.outcome == "allowed":
                governed(**call.arguments)
                continue
            with pytest.raises(ActionNotAllowed, match=call.reason):
                governed(**call.arguments)
    assert_same_decisions("@governed", observed(cp.events(sid)), tools.ran)


class _Step(TypedDict, total=False):
    tool: str
    arguments: dict[str, Any]
    answer: str


def test_langgraph(cp: ControlPlane) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    from agent_control_plane.integrations.langgraph import governed_action

    sid, tools = open_session(cp), Tools()

    def act(state: _Step) -> _Step:
        tool, arguments = state["tool"], state["arguments"]
        done = governed_action(
            cp, tool, lambda: getattr(tools, tool)(**arguments), session_id=sid, args=arguments
        )
        return {"answer": str(done.value if done.allowed else done.refusal)}

    builder = StateGraph(_Step)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    for call in CALLS:
        config: Any = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
        result = graph.invoke({"tool": call.tool, "arguments": call.arguments}, config)
        if call.outcome == "needs_approval":  # the graph pauses for a person
            (pause,) = result["__interrupt__"]
            assert pause.value["reason"] == call.reason
    assert_same_decisions("LangGraph", observed(cp.events(sid)), tools.ran)


def test_langchain(cp: ControlPlane) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from agent_control_plane.integrations.langchain import GovernanceMiddleware
    from tests.langchain_helpers import ScriptedChatModel, turn

    sid, tools = open_session(cp), Tools()
    script: list[Any] = [
        turn((call.tool, f"call_{n}", call.arguments)) for n, call in enumerate(CALLS)
    ]
    model = ScriptedChatModel.of([*script, "done"])
    middleware = GovernanceMiddleware(cp, sid, approvals="model")
    agent = create_agent(
        model, tools=[tool(getattr(tools, name)) for name in TOOL_NAMES], middleware=[middleware]
    )
    agent.invoke({"messages": [{"role": "user", "content": "go"}]})
    assert_same_decisions("LangChain", observed(cp.events(sid)), tools.ran)


def test_openai_agents(database: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    import agents
    from agents import Agent, Runner, function_tool

    from agent_control_plane.integrations.openai_agents import AgentGovernance
    from agent_control_plane.integrations.scripted_model import (
        ScriptedModel,
        message,
        tool_call,
    )

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    agents.set_tracing_disabled(True)

    async def scenario() -> None:
        async with await AsyncControlPlane.open(database.async_url_string) as acp:
            acp.set_prices({"gpt-test": {"input": "1", "output": "2"}})
            sid, tools = await aopen_session(acp), Tools()
            turns: list[Any] = [
                [tool_call(call.tool, f"call_{n}", **call.arguments)]
                for n, call in enumerate(CALLS)
            ]
            model = ScriptedModel([*turns, [message("done")]])
            agent = Agent(
                name="scenario",
                model=model,
                tools=[function_tool(getattr(tools, name)) for name in TOOL_NAMES],
            )
            governance = AgentGovernance(acp, sid, model="gpt-test")
            await Runner.run(governance.agent(agent), "go", max_turns=len(CALLS) + 2)
            assert_same_decisions("OpenAI Agents SDK", observed(await acp.events(sid)), tools.ran)

    asyncio.run(scenario())


def test_claude_agent_sdk(database: TestDatabase, tmp_path: Path) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, SdkMcpTool, create_sdk_mcp_server, tool

    from agent_control_plane.integrations.claude_agent_sdk import ClaudeGovernance
    from tests.claude_helpers import fake_cli, run

    tools = Tools()

    def sdk_tool(name: str) -> SdkMcpTool[Any]:
        body = getattr(tools, name)
        parameters = {p: str for p in body.__annotations__ if p != "return"}

        @tool(name, body.__doc__, parameters)
        async def call(args: dict[str, Any]) -> dict[str, Any]:
            return {"content": [{"type": "text", "text": body(**args)}]}

        return call

    async def scenario() -> None:
        async with await AsyncControlPlane.open(database.async_url_string) as acp:
            sid = await aopen_session(acp)
            server = create_sdk_mcp_server("shop", tools=[sdk_tool(n) for n in TOOL_NAMES])
            calls = [
                (f"mcp__shop__{c.tool}", f"toolu_{n}", c.arguments) for n, c in enumerate(CALLS)
            ]
            governance = ClaudeGovernance(
                acp, sid, actions=lambda name, _: name.removeprefix("mcp__shop__")
            )
            options = ClaudeAgentOptions(mcp_servers={"shop": server}, **fake_cli(tmp_path, calls))
            shown = await run(governance.options(options))
            for (_, call_id, _), call in zip(calls, CALLS, strict=True):
                assert shown[call_id].is_error is (call.outcome != "allowed")
            assert_same_decisions("Claude Agent SDK", observed(await acp.events(sid)), tools.ran)

    asyncio.run(scenario())


def test_pydantic_ai(cp: ControlPlane) -> None:
    from pydantic_ai import Agent

    from agent_control_plane.integrations.pydantic_ai import GovernanceCapability
    from tests.pydantic_ai_helpers import Script, close_thread_loop, turn

    sid, tools = open_session(cp), Tools()
    script = Script(*[turn((c.tool, f"call_{n}", c.arguments)) for n, c in enumerate(CALLS)])
    agent = Agent(
        script.model,
        tools=[getattr(tools, name) for name in TOOL_NAMES],
        capabilities=[GovernanceCapability(cp, sid, approvals="model")],
    )
    try:
        agent.run_sync("go")
    finally:
        close_thread_loop()
    shown = script.tool_returns()
    for call, result in zip(CALLS, shown, strict=True):
        assert result.outcome == ("success" if call.outcome == "allowed" else "failed")
    assert_same_decisions("Pydantic AI", observed(cp.events(sid)), tools.ran)
