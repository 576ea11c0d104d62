"""Native approvals: the SDK's own ``needs_approval`` interruptions, decided by ACP tickets.

A governed tool's ``needs_approval`` asks ``govern``; a call that needs a person's approval
interrupts the run (``RunResult.interruptions``) instead of being refused. Once a person
has answered the ticket in ACP, ``resolve`` approves or rejects the interruption on the run
state, and the resumed run governs the call once more: the approval is used there, in the
same transaction that charges it, so the call runs once. Approving in the SDK alone
changes nothing: the resumed call is still refused until ACP's ticket is approved.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agents import FunctionTool, RunContextWrapper, RunState
from agents.items import ToolApprovalItem

from agent_control_plane.integrations.openai_agents.calls import ToolCall, arguments_of, run_of
from agent_control_plane.models import Ticket
from agent_control_plane.rules.approvals import proposal_digest
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import Outcome

if TYPE_CHECKING:
    from agent_control_plane.integrations.openai_agents.governance import AgentGovernance

NeedsApproval = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]
_PAGE = 500


def needs_approval(governance: AgentGovernance, tool: FunctionTool, action: str) -> NeedsApproval:
    """The tool's ``needs_approval``: its own answer first, then ACP's decision."""
    own = tool.needs_approval

    async def check(
        context: RunContextWrapper[Any], arguments: dict[str, Any], call_id: str
    ) -> bool:
        if await _asks_itself(own, context, arguments, call_id):
            return True  # the application's own approval: left to the application
        call = ToolCall(tool.name, call_id, dict(arguments), run_of(context))
        decision = await governance.decide(action, call)
        governance.hand_on(call, decision)  # allowed or refused: the guardrail acts on it
        return decision.outcome is Outcome.NEEDS_APPROVAL

    return check


async def _asks_itself(
    own: bool | Callable[..., Any], context: Any, arguments: dict[str, Any], call_id: str
) -> bool:
    if isinstance(own, bool):
        return own
    answer = own(context, arguments, call_id)
    return bool(await answer if inspect.isawaitable(answer) else answer)


async def resolve(governance: AgentGovernance, state: RunState[Any, Any]) -> list[ToolApprovalItem]:
    """Approve or reject each interruption of ``state`` as its ACP ticket says; return
    the interruptions still waiting."""
    waiting: list[ToolApprovalItem] = []
    tickets: dict[tuple[str, str], Ticket] | None = None
    for item in state.get_interruptions():
        # A tool governed in another process, or not listed yet (an MCP server's), is
        # governed under its own name unless told otherwise.
        name = item.name or ""
        action = governance.actions.get(name, name)
        if tickets is None:
            tickets = await _newest_tickets(governance)
        proposal = Proposal(action=action, args=arguments_of(item.arguments))
        ticket = tickets.get((action, proposal_digest(proposal)))
        if ticket is not None and ticket.status == "approved":
            state.approve(item)
        elif ticket is not None and ticket.status in ("denied", "expired"):
            state.reject(
                item,
                rejection_message=(
                    f"The control plane refused {action} (denied: approval.{ticket.status}:"
                    f"{ticket.id}). Do not retry it."
                ),
            )
        else:
            waiting.append(item)
    return waiting


async def _newest_tickets(governance: AgentGovernance) -> dict[tuple[str, str], Ticket]:
    """The session's newest ticket for each proposal (action and arguments digest)."""
    newest: dict[tuple[str, str], Ticket] = {}
    cursor = None
    while True:
        page = await governance.call(
            "list_tickets", session_id=governance.session_id, limit=_PAGE, cursor=cursor
        )
        for ticket in page.items:  # oldest first: the last one seen is the newest
            newest[(ticket.action, ticket.args_digest)] = ticket
        cursor = page.next_cursor
        if cursor is None:
            return newest
