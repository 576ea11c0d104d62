"""One tool call through governance: map, govern, forward, record. Transport-free: the call's
arguments and the server's result are the JSON-RPC messages' own dicts, passed on as they
came."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from agent_control_plane.errors import (
    ControlPlaneError,
    GovernanceUnavailableError,
    InvalidInputError,
)
from agent_control_plane.integrations.mcp_proxy.governance import Governs
from agent_control_plane.integrations.mcp_proxy.jsonrpc import Message
from agent_control_plane.integrations.refusals import refusal
from agent_control_plane.models import Decision
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.rules.tools import ToolRefused, tool_request, visible

logger = logging.getLogger(__name__)
META_KEY = "agent_control_plane"
_SUMMARY_LIMIT = 500
# Outcomes waiting to be written behind the replies; beyond this many a reply waits.
_PENDING_OUTCOMES = 256

# Forwards the call to the server and returns its CallToolResult.
Forward = Callable[[], Awaitable[Message]]


def _error_result(message: str, details: dict[str, Any]) -> Message:
    """A tool error the agent can read (``isError``), with the details in ``_meta``."""
    return {
        "content": [{"type": "text", "text": message}],
        "isError": True,
        "_meta": {META_KEY: details},
    }


def _summary(result: Message) -> str:
    content = result.get("content")
    blocks = content if isinstance(content, list) else []
    texts = [
        block["text"]
        for block in blocks
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ]
    text = " ".join(texts) if texts else json.dumps(result.get("structuredContent"), default=str)
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class _Outcome:
    decision: Decision
    status: str
    result: dict[str, Any]


class ToolGovernor:
    """Governs the tool calls of one ACP session (one proxy serves one session).

    Inside :meth:`recording_behind`, a tool's result goes back to the agent before its
    outcome is written: outcomes are written in the order the calls ended, by one task,
    and all of them before the block is left. The decision, and its charge, are always
    written before the tool runs.
    """

    def __init__(
        self,
        control_plane: Governs,
        session_id: uuid.UUID,
        policy: CompiledPolicy,
        *,
        hide_blocked: bool = False,
        tell_operator: Callable[[str], None] = logger.warning,
    ) -> None:
        self.control_plane = control_plane
        self.session_id = session_id
        self.policy = policy
        self.hide_blocked = hide_blocked
        # The operator's log: what the agent is not told, such as how to approve a ticket.
        self.tell_operator = tell_operator
        self._behind: MemoryObjectSendStream[_Outcome] | None = None

    @asynccontextmanager
    async def recording_behind(self) -> AsyncIterator[None]:
        """Write outcomes after the replies (see the class), until the block is left."""
        send, receive = anyio.create_memory_object_stream[_Outcome](_PENDING_OUTCOMES)
        async with anyio.create_task_group() as writer:

            async def write_in_order() -> None:
                async with receive:
                    async for pending in receive:
                        await self._write(pending)

            writer.start_soon(write_in_order)
            self._behind = send
            try:
                yield
            finally:
                self._behind = None
                with anyio.CancelScope(shield=True):
                    await send.aclose()

    def listed(self, result: Message) -> Message:
        """The server's tool list (a ListToolsResult), less the tools the policy blocks
        when hiding them."""
        tools = result.get("tools")
        if not self.hide_blocked or not isinstance(tools, list):
            return result
        shown = [
            tool
            for tool in tools
            if isinstance(tool, dict)
            and isinstance(tool.get("name"), str)
            and visible(self.policy, tool["name"])
        ]
        return {**result, "tools": shown}

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        request_id: str | int | None,
        forward: Forward,
    ) -> Message:
        """Govern the call, forward it only if allowed, and record its outcome."""
        correlation = {"call_id": str(uuid.uuid4()), "mcp_request_id": request_id, "tool": tool}
        try:
            request = tool_request(self.policy.document, tool, arguments)
        except ToolRefused as refused:
            await self._record_refusal(refused.reason, str(refused), correlation)
            return _error_result(
                f"Denied by agent-control-plane: {refused}",
                {"outcome": "denied", "reason": refused.reason, **correlation},
            )
        try:
            decision = await self.control_plane.govern(
                self.session_id,
                request.action,
                resource=request.resource,
                resource_root=request.root,
                args=request.args,
                cost=request.cost,
                weight=request.weight,
                score=request.score,
                context=correlation,
            )
        except (InvalidInputError, GovernanceUnavailableError) as error:
            # Fail closed: a call that cannot be governed is not made.
            reason = "input.invalid" if isinstance(error, InvalidInputError) else "unavailable"
            return _error_result(
                f"Denied by agent-control-plane: {error}",
                {"outcome": "denied", "reason": reason, **correlation},
            )
        refused_by = refusal(decision)
        if refused_by is not None:
            if decision.ticket_id is not None:
                self.tell_operator(refused_by.operator_message)
            return _error_result(str(refused_by), self._details(decision, correlation))
        try:
            result = await forward()
        except anyio.get_cancelled_exc_class():
            # The client cancelled the call (the server was told): record it as such.
            with anyio.CancelScope(shield=True):
                await self._record(decision, "cancelled", correlation)
            raise
        except Exception as error:
            await self._record(decision, "failed", correlation, error=repr(error)[:_SUMMARY_LIMIT])
            raise
        is_error = bool(result.get("isError"))
        await self._record(
            decision,
            "failed" if is_error else "succeeded",
            correlation,
            is_error=is_error,
            summary=_summary(result),
        )
        return result

    @staticmethod
    def _details(decision: Decision, correlation: dict[str, Any]) -> dict[str, Any]:
        details = {"outcome": decision.outcome.value, "reason": decision.reason, **correlation}
        if decision.ticket_id is not None:
            details["ticket_id"] = str(decision.ticket_id)
        if decision.guidance is not None:
            details["guidance"] = decision.guidance
        return details

    async def _record(
        self, decision: Decision, status: str, correlation: dict[str, Any], **result: Any
    ) -> None:
        pending = _Outcome(decision, status, {**correlation, **result})
        if self._behind is None:
            await self._write(pending)
            return
        try:
            self._behind.send_nowait(pending)
        except anyio.WouldBlock:
            await self._behind.send(pending)

    async def _write(self, pending: _Outcome) -> None:
        try:
            await self.control_plane.record_outcome(
                pending.decision, pending.status, result=pending.result
            )
        except ControlPlaneError:
            # The tool ran: its result goes back to the agent (which would otherwise retry it),
            # and the decision event already records the call.
            logger.exception("could not record the outcome of %s", pending.result)

    async def _record_refusal(self, reason: str, message: str, correlation: dict[str, Any]) -> None:
        try:
            payload = {"reason": reason, "message": message, **correlation}
            await self.control_plane._record_event(self.session_id, "mcp.refused", payload)
        except ControlPlaneError:
            # The refusal stands whether or not the trail can take it (a killed session).
            logger.info("refusal of %s not recorded", correlation, exc_info=True)
