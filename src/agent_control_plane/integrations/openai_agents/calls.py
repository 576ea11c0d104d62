"""One Agents SDK tool call as ACP sees it: its arguments, its run, and its idempotency key."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from agents import RunContextWrapper
from agents.tool_context import ToolContext

from agent_control_plane.integrations import tool_settings
from agent_control_plane.integrations.tool_settings import PerTool
from agent_control_plane.rules.canonical import digest

T = TypeVar("T")

# Tool contexts, approval checks and hooks of one run all hold the run's Usage object
# (it travels with the run's state, copied along with it): ACP names the run on it.
_RUN_NAME = "_acp_run_id"


def run_of(context: RunContextWrapper[Any]) -> str:
    """ACP's name for the run ``context`` belongs to, given on first sight."""
    usage = context.usage
    run = getattr(usage, _RUN_NAME, None)
    if not isinstance(run, str):
        run = uuid.uuid4().hex
        setattr(usage, _RUN_NAME, run)
    return run


def arguments_of(raw: str | None) -> dict[str, Any]:
    """The call's arguments as the document ``govern`` records and approvals bind to."""
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"raw": raw}
    return arguments if isinstance(arguments, dict) else {"value": arguments}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What the model asked: which tool, with what, under which call id, in which run."""

    tool: str
    call_id: str
    arguments: dict[str, Any]
    run: str

    @classmethod
    def of(cls, tool: str, context: ToolContext[Any]) -> ToolCall:
        arguments = arguments_of(context.tool_arguments)
        return cls(tool, context.tool_call_id, arguments, run_of(context))

    @property
    def idempotency_key(self) -> str:
        """One key per call: models reuse call ids (``call_0`` in every response), so the
        key also names the run and digests what was asked. A replay of this very call (a
        guardrail run twice, a resumed run) gets the first decision and is not charged twice;
        any other call is a new decision."""
        asked = digest([self.tool, self.call_id, self.arguments])
        return f"openai-agents:{self.run}:{asked}"

    def correlation(self) -> dict[str, Any]:
        """Stored with the decision, to find the SDK's call from the audit trail."""
        return {"openai_agents": {"run": self.run, "call_id": self.call_id, "tool": self.tool}}


def value_for(setting: PerTool[T] | None, call: ToolCall, default: T) -> T:
    """The value ``setting`` gives ``call``'s tool (``default`` when it gives none)."""
    return tool_settings.value_for(setting, call.tool, call.arguments, default)
