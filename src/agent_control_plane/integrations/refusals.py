"""The error a refused decision becomes, shared by the decorator and the MCP proxy."""

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
