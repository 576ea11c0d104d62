"""What a refused decision becomes: the error the decorator and the MCP proxy raise, and
the sentence a model reads in place of a tool's output (every framework adapter)."""

from __future__ import annotations

from agent_control_plane.errors import (
    ActionDenied,
    ActionNotAllowed,
    ActionSteered,
    ApprovalRequired,
)
from agent_control_plane.models import Decision
from agent_control_plane.rules.routing import Outcome


def refusal(decision: Decision) -> ActionNotAllowed | None:
    """The error that says why ``decision`` does not allow the action; None if it does."""
    if decision.outcome is Outcome.ALLOWED:
        return None
    if decision.outcome is Outcome.NEEDS_APPROVAL:
        return ApprovalRequired(decision)
    if decision.outcome is Outcome.STEER:
        return ActionSteered(decision)
    return ActionDenied(decision)


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
