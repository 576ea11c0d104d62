"""From an MCP tool call to what ``govern`` is asked: the policy's ``tools`` section (pure).

Action, risk and cost come from the policy only; the agent's arguments fill the resource
template and are recorded, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agent_control_plane.rules.policy import PolicyDocument, ToolMapping, template_fields
from agent_control_plane.rules.routing import CompiledPolicy

UNMAPPED = "tool.unmapped"


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The govern() call for one tool call."""

    tool: str
    action: str
    resource: str | None
    # The server's folder, if the mapping names one: govern() resolves paths against it.
    root: str | None
    args: dict[str, Any]
    cost: Decimal
    weight: float | None
    score: float | None


class ToolRefused(Exception):
    """The call cannot even be put to ``govern``; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _resource(mapping: ToolMapping, tool: str, arguments: dict[str, Any]) -> str | None:
    if mapping.resource is None:
        return None
    missing = [name for name in template_fields(mapping.resource) if name not in arguments]
    if missing:
        raise ToolRefused(
            "tool.resource_argument_missing",
            f"{tool} needs the argument(s) {', '.join(missing)} to name its resource",
        )
    values = {name: str(value) for name, value in arguments.items()}
    return mapping.resource.format_map(values)


def tool_request(
    document: PolicyDocument, tool: str, arguments: dict[str, Any] | None
) -> ToolRequest:
    """What to govern for ``tool`` called with ``arguments``; ToolRefused if unmapped."""
    mapping = document.tools.get(tool)
    if mapping is None:
        raise ToolRefused(
            UNMAPPED,
            f"tool {tool!r} is not mapped to an action in policy {document.name!r} "
            "(add it under tools:), so it is denied",
        )
    args = dict(arguments or {})
    return ToolRequest(
        tool=tool,
        action=mapping.action,
        resource=_resource(mapping, tool, args),
        root=mapping.root,
        args=args,
        cost=mapping.cost,
        weight=mapping.risk.weight,
        score=mapping.risk.score,
    )


def visible(policy: CompiledPolicy, tool: str) -> bool:
    """Whether ``tools/list`` shows ``tool`` when blocked tools are hidden: it is mapped
    and its action is not in the blocked tier (a rule may still deny a particular call)."""
    mapping = policy.document.tools.get(tool)
    return mapping is not None and policy.blocked.match(mapping.action) is None
