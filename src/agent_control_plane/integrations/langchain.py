"""LangChain agents (``langchain.agents.create_agent``): a middleware that governs every
tool call, pauses for approvals with LangGraph's interrupt, and runs an approved call once.

``GovernanceMiddleware(cp, session_id=...)`` wraps each tool call (``wrap_tool_call``
and ``awrap_tool_call``):

- ``govern`` decides before the tool runs; a refusal is the ``ToolMessage`` the model
  reads (status ``error``), and the tool's body never runs.
- an allowed call is charged in that decision and claimed (``govern(..., claim=True)``);
  what the tool did is recorded after it: succeeded, failed (an exception, or the error
  ``ToolMessage`` the tool node made of one) or cancelled.
- a call that needs a person's approval interrupts the agent (LangGraph's ``interrupt``;
  the agent needs a checkpointer). ``Command(resume=...)`` re-runs the call, which asks
  ACP: an approved ticket is used and the tool runs, a denied one is refused, a pending
  one interrupts again. The resume value decides nothing: only ACP's ticket does.
- the call's idempotency key names the thread, the checkpoint task that runs it, the
  model's call id and a digest of its arguments: stable when LangGraph re-runs the task
  (a resume, a retry), distinct for every other call (models reuse call ids). Two
  executions that resume the same checkpoint at once run the tool once: the one holding
  the claim runs it, the other waits for its recorded outcome and replays it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.middleware.types import ModelRequest, ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.config import get_config
from langgraph.types import Command, interrupt

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionFailedBeforeError,
    ConfigurationError,
    InvalidInputError,
)
from agent_control_plane.integrations import claimed
from agent_control_plane.integrations.langchain_tokens import ModelCalls
from agent_control_plane.integrations.refusals import refusal_message
from agent_control_plane.integrations.tool_settings import PerTool, per_tool, value_for
from agent_control_plane.models import Decision
from agent_control_plane.rules.canonical import digest
from agent_control_plane.rules.tokens import Identity

__all__ = ["SESSION_KEY", "Approvals", "GovernanceMiddleware"]

Approvals = Literal["native", "model"]
# The graph config key that names the ACP session when the middleware is not given one.
SESSION_KEY = "acp_session_id"
# Seconds an execution waits for the outcome of a call another execution claimed.
DEFAULT_WAIT = 30.0

ToolResult = ToolMessage | Command[Any]


class _ToolFailed(Exception):
    """The tool node turned the tool's exception into an error ToolMessage: recorded as
    failed, and that message still goes to the model."""

    def __init__(self, message: ToolMessage) -> None:
        super().__init__(str(message.content)[:500])
        self.message = message


class GovernanceMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Govern every tool call of a ``create_agent`` agent in an ACP session.

    :param control_plane: a ControlPlane (for ``invoke``/``stream``, and ``ainvoke``,
        where its calls run in a worker thread) or an AsyncControlPlane (``ainvoke`` and
        ``astream`` only).
    :param session_id: the ACP session (default: ``configurable.acp_session_id`` of the
        agent's config, so one agent can serve many sessions).
    :param approvals: ``"native"``: a call that needs a person's approval interrupts the
        agent until ACP's ticket is decided (needs a checkpointer; without one the call
        is refused with the ticket named). ``"model"``: it is refused and the model told
        the ticket; it may call again once a person approved.
    :param actions: the ACP action each tool is governed as (default: the tool's name).
    :param costs: the estimated cost ``govern`` is given, per tool (default 0).
    :param weights: the risk weight (0..1) per tool, for policies with ``risk:``.
    :param scores: the confidence score (0..1) per tool, for policies with ``risk:``.
    :param wait: seconds an execution that does not hold a call's claim (a concurrent
        resume) waits for the claimant's outcome before ``ActionInProgressError``.
    :param model: the agent's model as ACP's price table names it: each model call is then
        checked against the token budgets before it is made (``TokenBudgetExhausted`` or
        ``ModelNotAllowedError``, the model not called) and its usage recorded after it.
        None (the default): model calls are not governed.
    :param identity: whose token budgets model calls count against (default: the
        session's tenant as org and its agent id as agent).

    ``actions``, ``costs``, ``weights`` and ``scores`` are each a mapping from tool name to
    value or a callable ``(tool_name, arguments) -> value`` (None: the default). A
    middleware listed after this one runs under its one decision: a retry there is charged
    once; one that interrupts must be listed before it.
    """

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        session_id: uuid.UUID | str | None = None,
        *,
        approvals: Approvals = "native",
        actions: PerTool[str] | None = None,
        costs: PerTool[Decimal | int | str] | None = None,
        weights: PerTool[float] | None = None,
        scores: PerTool[float] | None = None,
        wait: float = DEFAULT_WAIT,
        model: str | None = None,
        identity: Identity | None = None,
    ) -> None:
        super().__init__()
        if approvals not in ("native", "model"):
            raise ConfigurationError("approvals must be 'native' or 'model'")
        if wait < 0:
            raise InvalidInputError("wait", "must not be negative")
        self._control_plane = control_plane
        self._session_id = None if session_id is None else uuid.UUID(str(session_id))
        self._native = approvals == "native"
        self._actions = per_tool(actions, "actions")
        self._costs = per_tool(costs, "costs")
        self._weights = per_tool(weights, "weights")
        self._scores = per_tool(scores, "scores")
        self._wait = wait
        self._tokens = None if model is None else ModelCalls(model, identity)

    @property
    def name(self) -> str:
        return "acp_governance"

    def wrap_model_call(self, request: ModelRequest[Any], handler: Callable[..., Any]) -> Any:
        """Check the token budgets, call the model, record its usage."""
        if self._tokens is None:
            return handler(request)
        cp = self._sync_plane()
        sid = self._session_id or _configured_session(get_config())
        identity = self._tokens.known_identity(sid) or self._tokens.remember(cp.get_session(sid))
        cp.release(cp.reserve_tokens(**self._tokens.probe(identity, sid)))
        response = handler(request)
        for record in self._tokens.usage(identity, sid, response):
            cp.record_usage(**record)  # raises TokenBudgetExhausted once past a limit
        return response

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[..., Awaitable[Any]]
    ) -> Any:
        """The asyncio twin of :meth:`wrap_model_call`."""
        if self._tokens is None:
            return await handler(request)
        plane: Any = self._control_plane
        if isinstance(plane, ControlPlane):
            plane = claimed.Threaded(plane)
        sid = self._session_id or _configured_session(get_config())
        identity = self._tokens.known_identity(sid)
        if identity is None:
            identity = self._tokens.remember(await plane.get_session(sid))
        await plane.release(await plane.reserve_tokens(**self._tokens.probe(identity, sid)))
        response = await handler(request)
        for record in self._tokens.usage(identity, sid, response):
            await plane.record_usage(**record)
        return response

    def _sync_plane(self) -> ControlPlane:
        if isinstance(self._control_plane, AsyncControlPlane):
            raise ConfigurationError(
                "an AsyncControlPlane governs agents run with ainvoke()/astream(); "
                "for invoke()/stream() give GovernanceMiddleware a ControlPlane"
            )
        return self._control_plane

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolResult],
    ) -> ToolResult:
        """Govern the call, run it through ``handler`` once if allowed, record how it ended."""
        cp = self._sync_plane()
        tool_run = _ToolRun(request)
        steps = self._flow(request)
        try:
            ran = claimed.drive(cp, steps, lambda: tool_run.run(handler))
        except _ToolFailed as failed:
            return failed.message
        except ActionFailedBeforeError as error:
            return _message(request, str(error), "error")
        return tool_run.result(ran)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        """The asyncio twin of :meth:`wrap_tool_call`."""
        plane: Any = self._control_plane
        if isinstance(plane, ControlPlane):
            plane = claimed.Threaded(plane)
        tool_run = _ToolRun(request)
        steps = self._flow(request)
        try:
            ran = await claimed.adrive(plane, steps, lambda: tool_run.arun(handler))
        except _ToolFailed as failed:
            return failed.message
        except ActionFailedBeforeError as error:
            return _message(request, str(error), "error")
        return tool_run.result(ran)

    def _flow(self, request: ToolCallRequest) -> claimed.Flow:
        call = request.tool_call
        tool, arguments = call["name"], dict(call.get("args") or {})
        thread, key = _call_key(request)
        session = self._session_id or _configured_session(request.runtime.config)
        action = value_for(self._actions, tool, arguments, tool)
        free: Decimal | int | str = 0
        governed = {
            "args": arguments,
            "cost": value_for(self._costs, tool, arguments, free),
            "weight": value_for(self._weights, tool, arguments, None),
            "score": value_for(self._scores, tool, arguments, None),
            "context": {"langchain": {"thread": thread, "tool_call_id": call.get("id")}},
        }
        # Without a checkpointer the agent cannot be resumed: refuse, naming the ticket.
        pause = _pause_for(request) if self._native and thread is not None else None
        return claimed.flow(session, action, governed, key, self._wait, pause)


class _ToolRun:
    """One execution of the tool through the handler: keeps what the handler returned
    (for the model) and hands the flow what the outcome records (its content)."""

    def __init__(self, request: ToolCallRequest) -> None:
        self._request = request
        self._returned: ToolResult | None = None

    def run(self, handler: Callable[[ToolCallRequest], ToolResult]) -> Any:
        return self._kept(handler(self._request))

    async def arun(self, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]) -> Any:
        return self._kept(await handler(self._request))

    def _kept(self, returned: ToolResult) -> Any:
        self._returned = returned
        if isinstance(returned, ToolMessage):
            if returned.status == "error":
                raise _ToolFailed(returned)
            return returned.content
        return repr(returned)[:500]  # a Command updates the graph: recorded, not replayed

    def result(self, ran: claimed.Ran) -> ToolResult:
        if not ran.decision.allowed:
            return _message(self._request, refusal_message(ran.decision), "error")
        if self._returned is not None:
            return self._returned
        # Replayed: another execution ran the tool; the model reads what it returned.
        content = ran.value if isinstance(ran.value, str | list) else str(ran.value)
        return _message(self._request, content, "success")


def _message(
    request: ToolCallRequest, content: Any, status: Literal["success", "error"]
) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(
        content=content, tool_call_id=call.get("id") or "", name=call["name"], status=status
    )


def _call_key(request: ToolCallRequest) -> tuple[str | None, str]:
    """(thread, idempotency key) of the call: the same when LangGraph re-runs its task."""
    info = request.runtime.execution_info
    if info is None:
        raise ConfigurationError("GovernanceMiddleware governs tool calls of a create_agent agent")
    call = request.tool_call
    asked = digest([call["name"], call.get("id"), call.get("args") or {}])
    parts = [info.thread_id or "", info.checkpoint_ns, info.task_id, asked]
    key = "langchain:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]
    return info.thread_id, key


def _configured_session(config: Mapping[str, Any] | None) -> uuid.UUID:
    configurable: Mapping[str, Any] = (config or {}).get("configurable", {})
    session = configurable.get(SESSION_KEY)
    if session is None:
        raise ConfigurationError(
            f"pass session_id to GovernanceMiddleware or set configurable.{SESSION_KEY} "
            "in the agent's config"
        )
    return uuid.UUID(str(session))


def _pause_for(request: ToolCallRequest) -> claimed.Pause:
    call = request.tool_call

    def pause(decision: Decision) -> object:
        # Shaped like the HumanInTheLoopMiddleware's per-call request, so a UI that shows
        # those shows this one; ACP's ticket, not the resume value, decides.
        return interrupt(
            {
                "type": "acp_approval",
                "ticket_id": str(decision.ticket_id),
                "session_id": str(decision.session_id),
                "action": decision.action,
                "reason": decision.reason,
                "tool_call_id": call.get("id"),
                "name": call["name"],
                "args": call.get("args") or {},
                "description": (
                    f"{decision.action} needs a person's approval in the control plane "
                    f"(ticket {decision.ticket_id}); resume the agent once it is decided"
                ),
            }
        )

    return pause
