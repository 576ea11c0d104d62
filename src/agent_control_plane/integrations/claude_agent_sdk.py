"""Claude Agent SDK: govern every tool call before it runs and record what it did after.

``ClaudeGovernance(cp, session_id)`` gives the SDK its own callbacks:

- a ``PreToolUse`` hook (every tool call passes through it, whatever the permission mode
  or ``allowed_tools``): ``govern`` decides; a refusal is ``permissionDecision: "deny"``
  with a reason the model reads, and the tool never runs. An allowed call is charged in
  that decision and the hook gives no opinion of its own, so the SDK's own permission
  rules still apply.
- ``can_use_tool``: the same decision (asked under the same idempotency key, so never
  charged twice), answered with ``PermissionResultAllow`` / ``PermissionResultDeny``.
- ``PostToolUse`` / ``PostToolUseFailure`` hooks: the outcome of an allowed call,
  succeeded, failed or cancelled (an interrupt).
- approvals: with ``approvals="model"`` (the default) a call that needs a person's
  approval is denied with the ticket named, and the model may ask again once it is
  approved. With ``approvals="native"`` the hook answers ``"ask"``, which hands the call
  to ``can_use_tool`` (the SDK's own place for a person's answer): it waits up to
  ``approval_wait`` seconds for ACP's ticket, then allows (the approval is used then)
  or denies.

``governance.options(ClaudeAgentOptions(...))`` returns the options with all of it wired
in (the caller's own hooks kept, ours first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Literal

from claude_agent_sdk import (
    ClaudeAgentOptions,
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk.types import HookEvent, PermissionResult

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError, InvalidInputError
from agent_control_plane.integrations.outcomes import recorded, short
from agent_control_plane.integrations.refusals import refusal_message
from agent_control_plane.integrations.tool_settings import PerTool, per_tool, value_for
from agent_control_plane.models import Decision, Ticket
from agent_control_plane.rules.canonical import digest
from agent_control_plane.rules.routing import Outcome

__all__ = ["Approvals", "ClaudeGovernance"]

Approvals = Literal["model", "native"]
_log = logging.getLogger(__name__)
# Decisions kept from the check before a call to its outcome after it.
_REMEMBERED = 1024


class ClaudeGovernance:
    """Govern one ACP session's Claude Agent SDK tool calls.

    :param control_plane: a ControlPlane (its calls run in a worker thread) or an
        AsyncControlPlane.
    :param session_id: the ACP session every tool call is governed in.
    :param approvals: ``"model"``: a call that needs a person's approval is denied and the
        model told the ticket. ``"native"``: ``can_use_tool`` waits up to
        ``approval_wait`` seconds for a person to decide the ticket in ACP.
    :param approval_wait: seconds ``can_use_tool`` waits for a ticket (``"native"``).
    :param actions: the ACP action each tool is governed as (default: the tool's name as
        the SDK gives it, e.g. ``mcp__shop__refund`` for a tool of MCP server ``shop``).
    :param costs: the estimated cost ``govern`` is given, per tool (default 0).
    :param weights: the risk weight (0..1) per tool, for policies with ``risk:``.
    :param scores: the confidence score (0..1) per tool, for policies with ``risk:``.

    ``actions``, ``costs``, ``weights`` and ``scores`` are each a mapping from tool name to
    value or a callable ``(tool_name, tool_input) -> value`` (None: the default).
    """

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        session_id: uuid.UUID | str,
        *,
        approvals: Approvals = "model",
        approval_wait: float = 300.0,
        actions: PerTool[str] | None = None,
        costs: PerTool[Decimal | int | str] | None = None,
        weights: PerTool[float] | None = None,
        scores: PerTool[float] | None = None,
    ) -> None:
        if approvals not in ("model", "native"):
            raise ConfigurationError("approvals must be 'model' or 'native'")
        if approval_wait < 0:
            raise InvalidInputError("approval_wait", "must not be negative")
        self._control_plane = control_plane
        self._session_id = uuid.UUID(str(session_id))
        self._native = approvals == "native"
        self._approval_wait = approval_wait
        self._actions = per_tool(actions, "actions")
        self._costs = per_tool(costs, "costs")
        self._weights = per_tool(weights, "weights")
        self._scores = per_tool(scores, "scores")
        # The allowed decision of each call, by the SDK's tool_use_id: its outcome's record.
        self._allowed: OrderedDict[str, Decision] = OrderedDict()
        # The hook's decision of each call, by idempotency key, for can_use_tool after it.
        self._handed_on: OrderedDict[str, Decision] = OrderedDict()

    @property
    def session_id(self) -> uuid.UUID:
        return self._session_id

    def hooks(self) -> dict[HookEvent, list[HookMatcher]]:
        """The hooks to give ``ClaudeAgentOptions(hooks=...)``: every tool, before and after."""
        return {
            "PreToolUse": [HookMatcher(matcher=None, hooks=[self.pre_tool_use])],
            "PostToolUse": [HookMatcher(matcher=None, hooks=[self.post_tool_use])],
            "PostToolUseFailure": [HookMatcher(matcher=None, hooks=[self.post_tool_use_failure])],
        }

    def options(self, options: ClaudeAgentOptions | None = None) -> ClaudeAgentOptions:
        """``options`` (or new ones) with ACP's hooks before the caller's and ACP's
        ``can_use_tool``; ConfigurationError if the caller set a ``can_use_tool`` of
        their own (it would decide instead of ACP: call ours from it, instead)."""
        options = options or ClaudeAgentOptions()
        if options.can_use_tool is not None:
            raise ConfigurationError(
                "options already have a can_use_tool: have it await "
                "governance.can_use_tool(...) first and pass options without it"
            )
        hooks: dict[HookEvent, list[HookMatcher]] = dict(options.hooks or {})
        for event, matchers in self.hooks().items():
            hooks[event] = [*matchers, *hooks.get(event, [])]
        return dataclasses.replace(options, hooks=hooks, can_use_tool=self.can_use_tool)

    # -- the SDK's callbacks ----------------------------------------------------------

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        """The SDK's ``can_use_tool``: allow only what ACP allows."""
        call_id = context.tool_use_id
        decision = self._handed_on.pop(self._key(tool_name, tool_input, call_id), None)
        if decision is None:  # the hook did not see this call
            decision = await self._decide(tool_name, tool_input, call_id)
        if decision.outcome is Outcome.NEEDS_APPROVAL and self._native:
            decision = await self._await_ticket(tool_name, tool_input, call_id, decision)
        if decision.allowed:
            return PermissionResultAllow()
        return PermissionResultDeny(message=refusal_message(decision))

    async def pre_tool_use(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """The ``PreToolUse`` hook: deny what ACP refuses, before the tool runs."""
        if input_data["hook_event_name"] != "PreToolUse":
            return {}
        call_id = input_data.get("tool_use_id") or tool_use_id
        tool, tool_input = input_data["tool_name"], input_data["tool_input"]
        decision = await self._decide(tool, tool_input, call_id)
        _remember(self._handed_on, self._key(tool, tool_input, call_id), decision)
        if decision.allowed:
            return {}  # no opinion: the SDK's own permission rules still apply
        if decision.outcome is Outcome.NEEDS_APPROVAL and self._native:
            answer: Literal["ask", "deny"] = "ask"  # to can_use_tool, which waits for ACP
        else:
            answer = "deny"
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": answer,
                "permissionDecisionReason": refusal_message(decision),
            }
        }

    async def post_tool_use(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """The ``PostToolUse`` hook: record that the allowed call succeeded."""
        if input_data["hook_event_name"] == "PostToolUse":
            call_id = input_data.get("tool_use_id") or tool_use_id
            result = {"output": short(str(input_data.get("tool_response")))}
            await self._record(call_id, input_data["tool_name"], "succeeded", result)
        return {}

    async def post_tool_use_failure(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """The ``PostToolUseFailure`` hook: record a failed (or interrupted) call."""
        if input_data["hook_event_name"] == "PostToolUseFailure":
            call_id = input_data.get("tool_use_id") or tool_use_id
            status = "cancelled" if input_data.get("is_interrupt") else "failed"
            result = {"error": short(str(input_data.get("error", "")))}
            await self._record(call_id, input_data["tool_name"], status, result)
        return {}

    # -- one decision per call ----------------------------------------------------------

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the control plane, off the event loop when it is the sync one."""
        bound = getattr(self._control_plane, method)
        if isinstance(self._control_plane, AsyncControlPlane):
            return await bound(*args, **kwargs)
        return await asyncio.to_thread(bound, *args, **kwargs)

    def _key(self, tool: str, tool_input: dict[str, Any], call_id: str | None) -> str:
        """One key per call, the same for the hook and can_use_tool: the session, the
        tool, the SDK's tool_use_id and what was asked (a reused id asking something else
        is another call)."""
        return f"claude-agent-sdk:{self._session_id}:{digest([tool, call_id, tool_input])}"

    async def _decide(self, tool: str, tool_input: dict[str, Any], call_id: str | None) -> Decision:
        arguments = dict(tool_input)
        free: Decimal | int | str = 0
        decision: Decision = await self._call(
            "govern",
            self._session_id,
            value_for(self._actions, tool, arguments, tool),
            args=arguments,
            cost=value_for(self._costs, tool, arguments, free),
            weight=value_for(self._weights, tool, arguments, None),
            score=value_for(self._scores, tool, arguments, None),
            idempotency_key=self._key(tool, arguments, call_id),
            context={"claude_agent_sdk": {"tool": tool, "tool_use_id": call_id}},
        )
        if decision.allowed and call_id is not None:
            _remember(self._allowed, call_id, decision)
        return decision

    async def _await_ticket(
        self, tool: str, tool_input: dict[str, Any], call_id: str | None, pending: Decision
    ) -> Decision:
        """Wait for a person to decide the ticket, then ask again: approved is used now."""
        ticket: Ticket = await self._call(
            "wait_for_decision", pending.ticket_id, timeout=self._approval_wait
        )
        if ticket.pending:
            return pending  # nobody answered in time: refused, the ticket still open
        return await self._decide(tool, tool_input, call_id)

    async def _record(
        self, call_id: str | None, tool: str, status: str, result: dict[str, Any]
    ) -> None:
        decision = None if call_id is None else self._allowed.pop(call_id, None)
        if decision is None:
            # Not allowed by this governance (its hooks were not wired, or another
            # process decided it): nothing of ours to record against.
            _log.warning("no ACP decision for %s call %s: outcome not recorded", tool, call_id)
            return
        await recorded(self._call("record_outcome", decision, status, result=result))


def _remember(memory: OrderedDict[str, Decision], key: str, decision: Decision) -> None:
    memory[key] = decision
    while len(memory) > _REMEMBERED:
        memory.popitem(last=False)
