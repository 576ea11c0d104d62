"""Pydantic AI: a capability that governs every tool call of an ``Agent`` before it runs,
approvals through Pydantic AI's own deferred tools, and model usage against token budgets.

``Agent(model, capabilities=[GovernanceCapability(cp, session_id)])``:

- ``wrap_tool_execute`` (Pydantic AI's hook around every function tool the agent runs,
  whichever toolset it comes from): ``govern`` decides after the arguments are validated
  and before the tool runs. A refusal is the failed tool result the model reads
  (``ToolFailed``: the reason and what to do); the tool's body never runs.
- an allowed call is charged in that decision and claimed (``govern(..., claim=True)``);
  what the tool did is recorded after it: succeeded, failed (it raised, ``ModelRetry``
  and ``ToolFailed`` included) or cancelled.
- a call that needs a person's approval raises Pydantic AI's ``ApprovalRequired``, with
  the ACP ticket in its metadata: the run ends with ``DeferredToolRequests`` (or a
  ``handle_deferred_tool_calls`` handler resolves it inline). The resumed run, given
  ``DeferredToolResults`` (``acp_decides(requests)`` approves every call waiting on
  ACP), asks ACP again: an approved ticket is used and the tool runs, once; a denied one
  is refused; a pending one defers the call again. Approving in Pydantic AI alone runs
  nothing: only ACP's ticket decides.
- the call's idempotency key names the session, the model response that asked for the
  call (its run id and timestamp, kept in the message history that a resume passes on),
  the model's call id and a digest of the arguments. A resumed call finds its decision
  (and its ticket), so it is not charged twice; two runs that resume the same approved
  call at once run the tool once (the other replays the recorded result); a model that
  reuses call ids gets every new call governed. A tool that defers itself under ACP's
  decision (``ApprovalRequired`` in its body, an ``ApprovalRequiredToolset``) is
  recorded cancelled and, once the application approves it, decided anew.
- with ``model=`` (the model's name in ACP's price table), each model request is checked
  against the token budgets before it is sent (``TokenBudgetExhausted`` or
  ``ModelNotAllowedError``, the model not called) and the usage it reports
  (``ModelResponse.usage``, what the run's ``RunUsage`` adds up) recorded after it.
- native tools (``WebSearchTool``, ``CodeExecutionTool``, …) run on the model provider's
  side where ACP cannot check them first: a request that offers them is refused with
  ConfigurationError before it is sent.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic_ai import (
    ApprovalRequired,
    CallDeferred,
    DeferredToolRequests,
    DeferredToolResults,
    RunContext,
)
from pydantic_ai.capabilities import (
    AbstractCapability,
    ValidatedToolArgs,
    WrapToolExecuteHandler,
)
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.tools import ToolDefinition
from pydantic_core import to_jsonable_python

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionFailedBeforeError,
    ConfigurationError,
    InvalidInputError,
)
from agent_control_plane.integrations import claimed
from agent_control_plane.integrations.model_tokens import ModelCalls
from agent_control_plane.integrations.refusals import refusal_message
from agent_control_plane.integrations.tool_settings import PerTool, per_tool, value_for
from agent_control_plane.models import Decision
from agent_control_plane.rules.canonical import digest
from agent_control_plane.rules.tokens import Identity, TokenUsage

__all__ = ["APPROVAL", "SESSION_KEY", "Approvals", "GovernanceCapability", "acp_decides"]

Approvals = Literal["native", "model"]
# The run metadata key that names the ACP session when the capability is not given one.
SESSION_KEY = "acp_session_id"
# ``DeferredToolRequests.metadata[call_id]["type"]`` of a call that waits on an ACP ticket.
APPROVAL = "acp_approval"
# Seconds an execution waits for the outcome of a call another execution claimed.
DEFAULT_WAIT = 30.0


@dataclass
class GovernanceCapability(AbstractCapability[Any]):
    """Govern every tool call of a Pydantic AI agent in an ACP session.

    :param control_plane: a ControlPlane (its calls run in a worker thread; for
        ``run_sync`` and ``run``) or an AsyncControlPlane (``await agent.run(...)`` in the
        event loop the control plane was opened in).
    :param session_id: the ACP session (default: the run's ``metadata["acp_session_id"]``,
        so one agent can serve many sessions).
    :param approvals: ``"native"``: a call that needs a person's approval is deferred with
        Pydantic AI's ``ApprovalRequired`` (the agent's ``output_type`` must include
        ``DeferredToolRequests``, or a handler must resolve it inline). ``"model"``: it is
        refused and the model told the ticket; it may call again once a person approved.
    :param approval_wait: with ``"native"``, seconds the run waits inline for a person to
        decide the tickets of its deferred calls (``handle_deferred_tool_calls``) before
        it ends with ``DeferredToolRequests``; None (the default): it does not wait.
    :param actions: the ACP action each tool is governed as (default: the tool's name).
    :param costs: the estimated cost ``govern`` is given, per tool (default 0).
    :param weights: the risk weight (0..1) per tool, for policies with ``risk:``.
    :param scores: the confidence score (0..1) per tool, for policies with ``risk:``.
    :param wait: seconds an execution that does not hold a call's claim (a concurrent
        resume) waits for the claimant's outcome before ``ActionInProgressError``.
    :param model: the agent's model as ACP's price table names it: each model request is
        then checked against the token budgets before it is sent and its usage recorded
        after it. None (the default): model requests are not governed.
    :param identity: whose token budgets model requests count against (default: the
        session's tenant as org and its agent id as agent).

    ``actions``, ``costs``, ``weights`` and ``scores`` are each a mapping from tool name to
    value or a callable ``(tool_name, arguments) -> value`` (None: the default). A
    capability listed after this one wraps the tool inside its one decision: a retry there
    is charged once.
    """

    control_plane: ControlPlane | AsyncControlPlane
    session_id: uuid.UUID | str | None = None
    _: KW_ONLY
    approvals: Approvals = "native"
    approval_wait: float | None = None
    actions: PerTool[str] | None = None
    costs: PerTool[Decimal | int | str] | None = None
    weights: PerTool[float] | None = None
    scores: PerTool[float] | None = None
    wait: float = DEFAULT_WAIT
    model: str | None = None
    identity: Identity | None = None
    # An agent has one: a run's own GovernanceCapability replaces the agent's.
    id: str | None = "acp_governance"
    _tokens: ModelCalls | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.approvals not in ("native", "model"):
            raise ConfigurationError("approvals must be 'native' or 'model'")
        if self.wait < 0:
            raise InvalidInputError("wait", "must not be negative")
        if self.approval_wait is not None and self.approval_wait < 0:
            raise InvalidInputError("approval_wait", "must not be negative")
        if self.session_id is not None:
            self.session_id = uuid.UUID(str(self.session_id))
        for name in ("actions", "costs", "weights", "scores"):
            per_tool(getattr(self, name), name)
        self._tokens = None if self.model is None else ModelCalls(self.model, self.identity)

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # holds a control plane: not part of an agent spec

    # -- tool calls -----------------------------------------------------------------------

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """Govern the call, run it through ``handler`` once if allowed, record how it ended."""
        session = self._session(ctx)
        tool = call.tool_name
        arguments = _jsonable(args)
        approved = ctx.tool_call_approved
        governed = {
            "args": arguments,
            "cost": value_for(self.costs, tool, arguments, _FREE),
            "weight": value_for(self.weights, tool, arguments, None),
            "score": value_for(self.scores, tool, arguments, None),
            "context": {
                "pydantic_ai": {
                    "run_id": ctx.run_id,
                    "conversation_id": ctx.conversation_id,
                    "tool_call_id": call.tool_call_id,
                    "tool": tool,
                }
            },
        }
        key = _call_key(session, ctx.messages, ctx.run_id, call, arguments)
        pause = _pause_for(approved) if self.approvals == "native" else None
        action = value_for(self.actions, tool, arguments, tool)
        steps = claimed.flow(
            session,
            action,
            governed,
            key,
            self.wait,
            pause,
            deferrals=(ApprovalRequired, CallDeferred),
            # The tool deferred itself under an earlier decision: approved now, it is
            # decided anew (that earlier decision is recorded cancelled, its cost 0).
            anew=f"{key}:approved" if approved else None,
        )
        try:
            ran = await claimed.adrive(self._plane(), steps, lambda: handler(args))
        except ActionFailedBeforeError as error:
            raise ToolFailed(str(error)) from error
        if not ran.decision.allowed:
            raise ToolFailed(refusal_message(ran.decision))
        return ran.value

    async def handle_deferred_tool_calls(
        self, ctx: RunContext[Any], *, requests: DeferredToolRequests
    ) -> DeferredToolResults | None:
        """With ``approval_wait``: wait that long for the tickets of the calls ACP deferred,
        and resume those a person decided (their tool call then asks ACP, whose ticket
        decides); the others stay deferred."""
        if self.approval_wait is None:
            return None
        tickets = _tickets(requests)
        deadline = time.monotonic() + self.approval_wait
        plane = self._plane()
        decided: dict[str, bool] = {}
        for call_id, ticket_id in tickets.items():
            left = max(0.0, deadline - time.monotonic())
            ticket = await plane.wait_for_decision(ticket_id, timeout=left)
            if not ticket.pending:
                decided[call_id] = True
        return DeferredToolResults(approvals=dict(decided)) if decided else None

    # -- model requests -------------------------------------------------------------------

    async def prepare_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Refuse native tools; check the token budgets before the model is called."""
        native = request_context.model_request_parameters.native_tools
        if native:
            kinds = ", ".join(sorted({type(tool).__name__ for tool in native}))
            raise ConfigurationError(
                f"native tools ({kinds}) run on the model provider's side, where ACP cannot "
                "check them before they act; remove them, or do that work in a function tool"
            )
        if self._tokens is not None:
            plane, session = self._plane(), self._session(ctx)
            identity = await self._spender(plane, session)
            held = await plane.reserve_tokens(**self._tokens.probe(identity, session))
            await plane.release(held)
        return request_context

    async def after_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        response: ModelResponse,
    ) -> ModelResponse:
        """Record the usage the model reported; TokenBudgetExhausted (after recording) once
        it took a budget past its limit."""
        if self._tokens is None:
            return response
        plane, session = self._plane(), self._session(ctx)
        identity = await self._spender(plane, session)
        used = response.usage
        usage = TokenUsage(
            used.input_tokens,
            used.output_tokens,
            cached_input_tokens=min(used.cache_read_tokens, used.input_tokens),
        )
        # One record per attempt at each request step of the run: a retry is not recorded
        # twice, an attempt on another model (a fallback) is recorded too.
        key = f"pydantic-ai:{session}:{ctx.run_id}:{ctx.run_step}:{request_context.attempt}"
        await plane.record_usage(**self._tokens.record(identity, session, usage, key))
        return response

    # -- helpers --------------------------------------------------------------------------

    def _plane(self) -> Any:
        """The control plane's methods as coroutines (a sync one's in a worker thread)."""
        if isinstance(self.control_plane, AsyncControlPlane):
            return self.control_plane
        return claimed.Threaded(self.control_plane)

    def _session(self, ctx: RunContext[Any]) -> uuid.UUID:
        if self.session_id is not None:
            return uuid.UUID(str(self.session_id))
        session = (ctx.metadata or {}).get(SESSION_KEY)
        if session is None:
            raise ConfigurationError(
                f"pass session_id to GovernanceCapability or run the agent with "
                f"metadata={{'{SESSION_KEY}': ...}}"
            )
        return uuid.UUID(str(session))

    async def _spender(self, plane: Any, session: uuid.UUID) -> Identity:
        assert self._tokens is not None
        identity = self._tokens.known_identity(session)
        if identity is None:
            identity = self._tokens.remember(await plane.get_session(session))
        return identity


_FREE: Decimal | int | str = 0


def acp_decides(requests: DeferredToolRequests) -> DeferredToolResults:
    """``DeferredToolResults`` that resume every call of ``requests`` waiting on an ACP
    ticket: the resumed call asks ACP, whose ticket decides (approved: it runs, once;
    denied or expired: the model reads the refusal; still pending: deferred again).
    Calls deferred for another reason (the application's own approvals, external tools)
    are left out: add the application's results for those."""
    return DeferredToolResults(approvals=dict.fromkeys(_tickets(requests), True))


def _tickets(requests: DeferredToolRequests) -> dict[str, str]:
    """The ACP ticket each call of ``requests`` waits on, by tool call id."""
    tickets: dict[str, str] = {}
    for call in requests.approvals:
        metadata = requests.metadata.get(call.tool_call_id) or {}
        if metadata.get("type") == APPROVAL and metadata.get("ticket_id"):
            tickets[call.tool_call_id] = str(metadata["ticket_id"])
    return tickets


def _jsonable(args: Mapping[str, Any]) -> dict[str, Any]:
    """The validated arguments as the document ``govern`` records and approvals bind to."""
    value = to_jsonable_python(dict(args), serialize_unknown=True, bytes_mode="base64")
    return value if isinstance(value, dict) else {"value": value}


def _call_key(
    session: uuid.UUID,
    messages: list[ModelMessage],
    run_id: str | None,
    call: ToolCallPart,
    arguments: dict[str, Any],
) -> str:
    """One key per call, the same when the call is resumed from the message history.

    The model response that asked for the call (the run that made it, and when) travels
    with the history, so a resumed run, in this process or another, finds the same key
    (and with it the ticket the call waits on); models reuse call ids (``call_0`` in every
    response), so the response is part of it.
    """
    response = _response_of(messages, call.tool_call_id)
    turn = (
        [run_id, None, None]
        if response is None
        else [response.run_id, response.provider_response_id, response.timestamp.isoformat()]
    )
    asked = digest([call.tool_name, call.tool_call_id, arguments])
    parts = [str(session), *(str(part or "") for part in turn), asked]
    return "pydantic-ai:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


def _response_of(messages: list[ModelMessage], call_id: str) -> ModelResponse | None:
    """The newest model response that asked for ``call_id``."""
    for message in reversed(messages):
        if isinstance(message, ModelResponse) and any(
            isinstance(part, ToolCallPart) and part.tool_call_id == call_id
            for part in message.parts
        ):
            return message
    return None


def _pause_for(approved: bool) -> claimed.Pause:
    """Defer a call that needs approval with Pydantic AI's ``ApprovalRequired``; a call
    that comes approved asks ACP's ticket once first (a person may have decided it)."""
    resumed = approved

    def pause(decision: Decision) -> object:
        nonlocal resumed
        if resumed:
            resumed = False
            return None  # the flow asks ACP whether the ticket was decided
        raise ApprovalRequired(
            metadata={
                "type": APPROVAL,
                "ticket_id": str(decision.ticket_id),
                "session_id": str(decision.session_id),
                "action": decision.action,
                "reason": decision.reason,
                "description": (
                    f"{decision.action} needs a person's approval in the control plane "
                    f"(ticket {decision.ticket_id}); resume the run once it is decided"
                ),
            }
        )

    return pause
