"""AgentGovernance: one ACP session governing the runs of OpenAI Agents SDK agents."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Literal

from agents import Agent, FunctionTool, ModelResponse, RunState
from agents.items import ToolApprovalItem

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.integrations.openai_agents import approvals, tools, wiring
from agent_control_plane.integrations.openai_agents.calls import ToolCall, value_for
from agent_control_plane.integrations.outcomes import recorded
from agent_control_plane.integrations.tool_settings import PerTool, per_tool
from agent_control_plane.models import Decision
from agent_control_plane.rules.routing import Outcome
from agent_control_plane.rules.tokens import Identity, TokenUsage

Refusal = Literal["reject", "stop"]
Approvals = Literal["model", "native"]

# Decisions handed from one step of a call to the next (approval check, guardrail, tool);
# one that falls out is asked again under the same key: a replay, not a second charge.
_REMEMBERED = 1024


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
    :param approvals: ``"model"``: a call that needs a person's approval is refused and
        the model told the ticket (the model calls again once approved). ``"native"``: the
        run is interrupted with the SDK's own ``needs_approval``; ``resolve_interruptions``
        approves or rejects each interruption as its ACP ticket says, and the resumed run
        performs the call once.
    :param costs: the estimated cost ``govern`` is given, per tool (default 0).
    :param weights: the risk weight (0..1) per tool, for policies with ``risk:``.
    :param scores: the confidence score (0..1) per tool, for policies with ``risk:``.

    ``costs``, ``weights`` and ``scores`` are each a mapping from tool name to value or a
    callable ``(tool_name, arguments) -> value`` (None: the default).
    """

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        session_id: uuid.UUID | str,
        *,
        identity: Identity | None = None,
        model: str | None = None,
        on_refusal: Refusal = "reject",
        approvals: Approvals = "model",
        costs: PerTool[Decimal | int | str] | None = None,
        weights: PerTool[float] | None = None,
        scores: PerTool[float] | None = None,
    ) -> None:
        if on_refusal not in ("reject", "stop"):
            raise ConfigurationError("on_refusal must be 'reject' or 'stop'")
        if approvals not in ("model", "native"):
            raise ConfigurationError("approvals must be 'model' or 'native'")
        self._control_plane = control_plane
        self._session_id = uuid.UUID(str(session_id))
        self._identity = identity
        self._model = model
        self.on_refusal: Refusal = on_refusal
        self.native_approvals = approvals == "native"
        self._costs = per_tool(costs, "costs")
        self._weights = per_tool(weights, "weights")
        self._scores = per_tool(scores, "scores")
        self._decided: OrderedDict[str, Decision] = OrderedDict()
        # The action each governed tool is decided as, by tool name.
        self.actions: dict[str, str] = {}

    @property
    def session_id(self) -> uuid.UUID:
        return self._session_id

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the control plane, off the event loop when it is the sync one."""
        bound = getattr(self._control_plane, method)
        if isinstance(self._control_plane, AsyncControlPlane):
            return await bound(*args, **kwargs)
        return await asyncio.to_thread(bound, *args, **kwargs)

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A copy of ``agent`` governed on every path it acts through: its function
        tools, the tools of its MCP servers, the agents it hands off to (copied the same
        way) and its model calls (token budgets, also when ``Runner.run`` gets hooks of
        its own). Tools ACP cannot govern are refused here with ConfigurationError:
        hosted tools (run on the provider's side), other non-function tools, and agents
        used as tools that are not governed themselves."""
        return wiring.governed_agent(self, agent)

    def tool(self, tool: FunctionTool, *, action: str | None = None) -> FunctionTool:
        """A copy of ``tool`` governed as ``action`` (default: the tool's name)."""
        return tools.governed_tool(self, tool, action or tool.name)

    async def resolve_interruptions(self, state: RunState[Any, Any]) -> list[ToolApprovalItem]:
        """With ``approvals="native"``: approve or reject each of the run's interruptions
        as the ACP ticket its call waits on says; return those still waiting (a pending
        ticket, or an approval the tool asked for itself). Then resume with
        ``Runner.run(agent, state)``: an approved call is governed once more (the approval
        is used) and performed once."""
        return await approvals.resolve(self, state)

    async def decide(self, action: str, call: ToolCall) -> Decision:
        """The decision for ``call``: the one an earlier step of it handed on, else
        ``govern``'s (under the call's own key, so asking twice is a replay)."""
        known = self._decided.pop(call.idempotency_key, None)
        if known is not None:
            return known
        free: Decimal | int | str = 0
        decision: Decision = await self.call(
            "govern",
            self._session_id,
            action,
            args=call.arguments,
            cost=value_for(self._costs, call, free),
            weight=value_for(self._weights, call, None),
            score=value_for(self._scores, call, None),
            idempotency_key=call.idempotency_key,
            context=call.correlation(),
        )
        return decision

    def hand_on(self, call: ToolCall, decision: Decision) -> None:
        """Keep ``decision`` for the next step of ``call``; a pending approval is asked
        again (it may have been given since)."""
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            return
        self._decided[call.idempotency_key] = decision
        while len(self._decided) > _REMEMBERED:
            self._decided.popitem(last=False)

    async def record(self, decision: Decision, status: str, result: dict[str, Any]) -> None:
        """Record what an allowed call did; the record survives a second cancellation."""
        await recorded(self.call("record_outcome", decision, status, result=result))

    async def _spender(self, agent: Agent[Any]) -> tuple[Identity, str]:
        if self._identity is None:
            session = await self.call("get_session", self._session_id)
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
        held = await self.call(
            "reserve_tokens",
            identity,
            model,
            input_tokens=0,
            max_output_tokens=0,
            session_id=self._session_id,
        )
        await self.call("release", held)

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
        await self.call(
            "record_usage",
            identity,
            model,
            TokenUsage(usage.input_tokens, usage.output_tokens, cached_input_tokens=cached or 0),
            session_id=self._session_id,
            idempotency_key=key,
        )
