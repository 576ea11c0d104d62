"""A function tool under ACP: decided before it runs, its outcome recorded after.

The decision is made in a tool input guardrail (so a refusal is the SDK's own rejection
or tripwire) and handed to the tool's invoker, which runs the tool and records what it
did. With native approvals, the tool's ``needs_approval`` asks ACP first.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from agents import (
    FunctionTool,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)
from agents.tool import (
    maybe_invoke_function_tool_failure_error_function,
    set_function_tool_failure_error_function,
)
from agents.tool_context import ToolContext

from agent_control_plane.integrations.openai_agents import approvals
from agent_control_plane.integrations.openai_agents.calls import ToolCall
from agent_control_plane.integrations.outcomes import failure_summary, status_of
from agent_control_plane.integrations.refusals import refusal_message

if TYPE_CHECKING:
    from agent_control_plane.integrations.openai_agents.governance import AgentGovernance

_OUTPUT_LIMIT = 1000
# Set on a governed copy: the governance that governs it (a copy of it stays governed).
GOVERNED_BY = "_acp_governance"


def governed_tool(governance: AgentGovernance, tool: FunctionTool, action: str) -> FunctionTool:
    """A copy of ``tool`` whose every call ``governance`` decides as ``action``."""
    if getattr(tool, GOVERNED_BY, None) is governance:
        return tool
    governed = copy.copy(tool)
    setattr(governed, GOVERNED_BY, governance)
    governance.actions[tool.name] = action

    async def check(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        call = ToolCall.of(tool.name, data.context)
        decision = await governance.decide(action, call)
        if decision.allowed:
            governance.hand_on(call, decision)  # to the tool's invoker, below
            return ToolGuardrailFunctionOutput.allow(output_info=decision)
        if governance.on_refusal == "stop":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=decision)
        return ToolGuardrailFunctionOutput.reject_content(
            refusal_message(decision), output_info=decision
        )

    guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
        guardrail_function=check, name=f"acp:{action}"
    )
    # The tool's own guardrails first: a call they reject is never put to govern.
    governed.tool_input_guardrails = [*(tool.tool_input_guardrails or []), guardrail]
    # Exceptions must reach our invoker so the outcome says "failed"; it then formats
    # them with the original tool's own failure policy.
    set_function_tool_failure_error_function(governed, None)
    inner = governed.on_invoke_tool

    async def invoke(context: ToolContext[Any], arguments: str) -> Any:
        call = ToolCall.of(tool.name, context)
        decision = await governance.decide(action, call)  # handed on by the guardrail
        if not decision.allowed:  # the guardrail did not run for this call
            return refusal_message(decision)
        try:
            output = await inner(context, arguments)
        except BaseException as error:
            await governance.record(decision, status_of(error), failure_summary(error))
            if not isinstance(error, Exception):
                raise
            message = await maybe_invoke_function_tool_failure_error_function(
                function_tool=tool, context=context, error=error
            )
            if message is None:
                raise
            return message
        result = {"output": str(output)[:_OUTPUT_LIMIT]}
        await governance.record(decision, "succeeded", result)
        return output

    governed.on_invoke_tool = invoke
    if governance.native_approvals:
        governed.needs_approval = approvals.needs_approval(governance, tool, action)
    return governed
