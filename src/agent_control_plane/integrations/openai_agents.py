"""OpenAI Agents SDK: every function-tool call governed by ACP, every model call counted.

``AgentGovernance(cp, session_id).agent(agent)`` returns a copy of the agent whose function
tools carry an ACP tool-input guardrail: ``govern`` decides before the tool runs, and a
refusal either goes back to the model as the tool's output (``on_refusal="reject"``, the
default: the tool does not run and the model may carry on) or stops the run with the SDK's
``ToolInputGuardrailTripwireTriggered`` (``on_refusal="stop"``). What the tool then did is
recorded with ``record_outcome`` (an exception is recorded as failed). Pass
``governance.hooks`` to ``Runner.run``: each model call's usage is recorded against ACP's
token budgets, and a call is refused before it is made once a budget is exhausted.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from agents import (
    Agent,
    FunctionTool,
    ModelResponse,
    RunContextWrapper,
    RunHooks,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    TResponseInputItem,
)
from agents.tool import (
    maybe_invoke_function_tool_failure_error_function,
    set_function_tool_failure_error_function,
)
from agents.tool_context import ToolContext

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.models import Decision
from agent_control_plane.rules.tokens import Identity, TokenUsage

Refusal = Literal["reject", "stop"]
_OUTPUT_LIMIT = 1000


def refusal_message(decision: Decision) -> str:
    """What the model reads instead of the tool's output when ACP refused the call."""
    text = (
        f"The control plane refused {decision.action} ({decision.outcome.value}: {decision.reason})"
    )
    if decision.guidance:
        return f"{text}. {decision.guidance}"
    if decision.ticket_id is not None:
        return f"{text}. A person must approve it first (ticket {decision.ticket_id})."
    return f"{text}. Do not retry it."


class AgentGovernance:
    """Governs one ACP session's agent runs: tool calls through ``govern``, model calls
    through the token budgets.

    :param control_plane: a ControlPlane (its calls run in a worker thread) or an
        AsyncControlPlane.
    :param session_id: the ACP session every tool call is governed in.
    :param identity: whose token budgets model calls count against (default: the
        session's tenant as org and its agent id as agent).
    :param model: the model name for the price table (default: the agent's ``model``
        when it is a name).
    :param on_refusal: ``"reject"`` sends the refusal to the model as the tool's output;
        ``"stop"`` ends the run with ToolInputGuardrailTripwireTriggered.
    :param costs: the estimated cost passed to ``govern`` per tool name (default 0).
    """

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        session_id: uuid.UUID | str,
        *,
        identity: Identity | None = None,
        model: str | None = None,
        on_refusal: Refusal = "reject",
        costs: Mapping[str, Decimal | int | str] | None = None,
    ) -> None:
        if on_refusal not in ("reject", "stop"):
            raise ConfigurationError("on_refusal must be 'reject' or 'stop'")
        self._control_plane = control_plane
        self._session_id = uuid.UUID(str(session_id))
        self._identity = identity
        self._model = model
        self._on_refusal = on_refusal
        self._costs = dict(costs or {})
        # Allowed decisions handed from the guardrail to the tool's invoker, by call id.
        self._allowed: dict[str, Decision] = {}
        self.hooks: RunHooks[Any] = _UsageHooks(self)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self._control_plane, method)
        if isinstance(self._control_plane, AsyncControlPlane):
            return await bound(*args, **kwargs)
        return await asyncio.to_thread(bound, *args, **kwargs)

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A copy of ``agent`` whose function tools are governed. Other kinds of tool
        (hosted, computer, MCP servers) cannot be governed here: they are refused."""
        tools = []
        for tool in agent.tools:
            if not isinstance(tool, FunctionTool):
                raise ConfigurationError(
                    f"{type(tool).__name__} {getattr(tool, 'name', '')!r} runs outside this "
                    "process and cannot be governed; give the agent function tools only"
                )
            tools.append(self.tool(tool))
        return agent.clone(tools=tools)

    def tool(self, tool: FunctionTool, *, action: str | None = None) -> FunctionTool:
        """A copy of ``tool`` governed as ``action`` (default: the tool's name)."""
        name = action or tool.name
        governed = copy.copy(tool)
        guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=lambda data: self._check(name, data),
            name=f"acp:{name}",
        )
        governed.tool_input_guardrails = [*(tool.tool_input_guardrails or []), guardrail]
        # Exceptions must reach our invoker so the outcome says "failed"; it then formats
        # them with the original tool's own failure policy.
        set_function_tool_failure_error_function(governed, None)
        inner = governed.on_invoke_tool

        async def invoke(context: ToolContext[Any], arguments: str) -> Any:
            decision = self._allowed.pop(context.tool_call_id, None)
            if decision is None:  # the guardrail did not run for this call: decide now
                decision = await self._govern(name, context)
                if not decision.allowed:
                    return refusal_message(decision)
            try:
                output = await inner(context, arguments)
            except Exception as error:
                failure = {"error": f"{type(error).__name__}: {error}"[:_OUTPUT_LIMIT]}
                await self._call("record_outcome", decision, "failed", result=failure)
                message = await maybe_invoke_function_tool_failure_error_function(
                    function_tool=tool, context=context, error=error
                )
                if message is None:
                    raise
                return message
            result = {"output": str(output)[:_OUTPUT_LIMIT]}
            await self._call("record_outcome", decision, "succeeded", result=result)
            return output

        governed.on_invoke_tool = invoke
        return governed

    async def _govern(self, action: str, context: ToolContext[Any]) -> Decision:
        try:
            arguments = json.loads(context.tool_arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"raw": context.tool_arguments}
        decision: Decision = await self._call(
            "govern",
            self._session_id,
            action,
            args=arguments if isinstance(arguments, dict) else {"value": arguments},
            cost=self._costs.get(context.tool_name, 0),
            # The call id names one tool invocation for the run's lifetime: a replayed
            # call (a resumed run) gets the first decision and is not charged twice.
            idempotency_key=f"openai-agents:{self._session_id}:{context.tool_call_id}",
        )
        return decision

    async def _check(
        self, action: str, data: ToolInputGuardrailData
    ) -> ToolGuardrailFunctionOutput:
        decision = await self._govern(action, data.context)
        if decision.allowed:
            self._allowed[data.context.tool_call_id] = decision
            return ToolGuardrailFunctionOutput.allow(output_info=decision)
        if self._on_refusal == "stop":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=decision)
        return ToolGuardrailFunctionOutput.reject_content(
            refusal_message(decision), output_info=decision
        )

    async def _spender(self, agent: Agent[Any]) -> tuple[Identity, str]:
        if self._identity is None:
            session = await self._call("get_session", self._session_id)
            self._identity = Identity(org=session.tenant, agent=session.agent_id)
        model = self._model or (agent.model if isinstance(agent.model, str) else None)
        if not model:
            raise ConfigurationError(
                f"agent {agent.name!r} has no model name to price its usage: pass model="
            )
        return self._identity, model

    async def check_budget(self, agent: Agent[Any]) -> None:
        """Raise TokenBudgetExhausted (or ModelNotAllowedError) if a budget of this
        session or identity cannot take another call; holds nothing."""
        identity, model = await self._spender(agent)
        held = await self._call(
            "reserve_tokens",
            identity,
            model,
            input_tokens=0,
            max_output_tokens=0,
            session_id=self._session_id,
        )
        await self._call("release", held)

    async def record_usage(self, agent: Agent[Any], response: ModelResponse) -> None:
        """Record one model call's usage; raises TokenBudgetExhausted (after recording)
        when it took a budget past its limit."""
        identity, model = await self._spender(agent)
        usage = response.usage
        cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
        key = (
            None
            if response.response_id is None
            else f"openai-agents:{self._session_id}:{response.response_id}"
        )
        await self._call(
            "record_usage",
            identity,
            model,
            TokenUsage(usage.input_tokens, usage.output_tokens, cached_input_tokens=cached or 0),
            session_id=self._session_id,
            idempotency_key=key,
        )


class _UsageHooks(RunHooks[Any]):
    """Run hooks that check token budgets before each model call and record its usage."""

    def __init__(self, governance: AgentGovernance) -> None:
        self._governance = governance

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        await self._governance.check_budget(agent)

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        await self._governance.record_usage(agent, response)
