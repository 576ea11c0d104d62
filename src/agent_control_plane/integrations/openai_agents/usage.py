"""A governed agent's hooks: ACP's token accounting around the agent's own hooks.

They sit on the agent (``Agent.hooks``), not on the run, so whatever hooks the caller gives
``Runner.run`` the accounting still happens, and the agent's own hooks still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents import Agent, AgentHooks, ModelResponse, RunContextWrapper, TResponseInputItem
from agents.lifecycle import AgentHooksBase

if TYPE_CHECKING:
    from agent_control_plane.integrations.openai_agents.governance import AgentGovernance


class GovernedHooks(AgentHooks[Any]):
    """Check the token budgets before each model call and record its usage after it."""

    def __init__(self, governance: AgentGovernance, inner: AgentHooksBase[Any, Any] | None) -> None:
        self._governance = governance
        self._inner = inner

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        await self._governance.check_budget(agent)  # refused before the model is called
        if self._inner is not None:
            await self._inner.on_llm_start(context, agent, system_prompt, input_items)

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        try:
            await self._governance.record_usage(agent, response)  # spent: recorded first
        finally:
            if self._inner is not None:
                await self._inner.on_llm_end(context, agent, response)

    async def on_start(self, *args: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            await self._inner.on_start(*args, **kwargs)

    async def on_end(self, *args: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            await self._inner.on_end(*args, **kwargs)

    async def on_handoff(self, *args: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            await self._inner.on_handoff(*args, **kwargs)

    async def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_start(*args, **kwargs)

    async def on_tool_end(self, *args: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_end(*args, **kwargs)
