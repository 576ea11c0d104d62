"""Which paths of an agent ACP governs, and which it refuses when the agent is wired.

A governed agent is a copy of the user's agent (of a subclass that keeps the governance
through the SDK's own copies, ``dataclasses.replace``) whose function tools are governed,
whose MCP servers' tools are governed each time the SDK lists them, whose handoffs lead to
governed copies, and whose hooks do ACP's token accounting around the agent's own hooks.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agents import Agent, FunctionTool, Handoff, RunContextWrapper, Tool

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.integrations.openai_agents.usage import GovernedHooks

if TYPE_CHECKING:
    from agent_control_plane.integrations.openai_agents.governance import AgentGovernance

TContext = TypeVar("TContext")

# Tools the model provider runs itself: no code of ours runs before them.
_HOSTED = {
    "CodeInterpreterTool",
    "FileSearchTool",
    "HostedMCPTool",
    "ImageGenerationTool",
    "ProgrammaticToolCallingTool",
    "ToolSearchTool",
    "WebSearchTool",
}


@dataclasses.dataclass
class GovernedAgent(Agent[TContext]):
    """An agent made by ``AgentGovernance.agent``: every path it acts through is governed."""

    acp_governance: Any = dataclasses.field(default=None, kw_only=True, repr=False, compare=False)

    async def get_mcp_tools(self, run_context: RunContextWrapper[TContext]) -> list[Tool]:
        governance = self.acp_governance
        if governance is None:
            raise ConfigurationError("make governed agents with AgentGovernance.agent(agent)")
        listed = await super().get_mcp_tools(run_context)
        return [governance.tool(_governable(tool, self.name)) for tool in listed]


def governed_agent(
    governance: AgentGovernance,
    agent: Agent[Any],
    copies: dict[int, Agent[Any]] | None = None,
) -> Agent[Any]:
    """The governed copy of ``agent`` (``copies``: those made so far, for cycles of
    handoffs); ConfigurationError if it has a tool ACP cannot govern."""
    if getattr(agent, "acp_governance", None) is governance:
        return agent
    copies = {} if copies is None else copies
    made = copies.get(id(agent))
    if made is not None:
        return made
    tools: list[Tool] = [_governed_tool(governance, tool, agent.name) for tool in agent.tools]
    values = {
        field.name: getattr(agent, field.name)
        for field in dataclasses.fields(agent)
        if field.init and field.name not in ("tools", "hooks", "handoffs", "acp_governance")
    }
    governed = _governed_class(type(agent))(
        **values,
        tools=tools,
        hooks=GovernedHooks(governance, agent.hooks),
        acp_governance=governance,
    )
    copies[id(agent)] = governed
    governed.handoffs = [_governed_handoff(governance, entry, copies) for entry in agent.handoffs]
    return governed


_CLASSES: dict[type[Agent[Any]], type[GovernedAgent[Any]]] = {Agent: GovernedAgent}


def _governed_class(base: type[Agent[Any]]) -> type[GovernedAgent[Any]]:
    """GovernedAgent for a plain Agent; for a subclass of Agent, a subclass of both."""
    if issubclass(base, GovernedAgent):
        return base
    made = _CLASSES.get(base)
    if made is None:
        name = f"Governed{base.__name__}"
        made = cast(
            type[GovernedAgent[Any]],
            dataclasses.make_dataclass(name, [], bases=(GovernedAgent, base)),
        )
        _CLASSES[base] = made
    return made


def _governable(tool: Tool, owner: str) -> FunctionTool:
    kind = type(tool).__name__
    if kind in _HOSTED:
        raise ConfigurationError(
            f"{kind} {getattr(tool, 'name', '')!r} of agent {owner!r} runs on the model "
            "provider's side, where ACP cannot check it before it acts; remove it, or do "
            "that work in a function tool"
        )
    if not isinstance(tool, FunctionTool):
        raise ConfigurationError(
            f"{kind} {getattr(tool, 'name', '')!r} of agent {owner!r} is not a function "
            "tool and cannot be governed; do that work in a function tool"
        )
    return tool


def _governed_tool(governance: AgentGovernance, tool: Tool, owner: str) -> FunctionTool:
    function = _governable(tool, owner)
    inner = getattr(function, "_agent_instance", None)
    if isinstance(inner, Agent) and getattr(inner, "acp_governance", None) is None:
        # Its agent runs tools and model calls of its own, which the tool's one decision
        # does not cover.
        raise ConfigurationError(
            f"tool {function.name!r} of agent {owner!r} runs agent {inner.name!r}, which is "
            f"not governed: make it with governance.agent({inner.name}).as_tool(...)"
        )
    return governance.tool(function)


def _governed_handoff(
    governance: AgentGovernance,
    entry: Agent[Any] | Handoff[Any, Any],
    copies: dict[int, Agent[Any]],
) -> Agent[Any] | Handoff[Any, Any]:
    if isinstance(entry, Agent):
        return governed_agent(governance, entry, copies)
    reference = getattr(entry, "_agent_ref", None)
    target = reference() if callable(reference) else None
    governed_target = None
    if isinstance(target, Agent):  # known now: refuse what cannot be governed now
        governed_target = governed_agent(governance, target, copies)
    invoke_inner = entry.on_invoke_handoff

    async def invoke(context: RunContextWrapper[Any], arguments: str) -> Agent[Any]:
        return governed_agent(governance, await invoke_inner(context, arguments), copies)

    governed = copy.copy(entry)
    governed.on_invoke_handoff = invoke
    if governed_target is not None:
        governed._agent_ref = weakref.ref(governed_target)
    return governed
