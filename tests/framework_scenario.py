"""One scenario for every framework adapter: the same calls under the same policy file,
and the decision each must get, compared call by call.

A runner opens a session with ``open_session``/``aopen_session`` (the budget is the
policy's ``limits``), has its framework's agent make ``CALLS`` in order through tools that
``Tools`` builds (each records that its body ran), and passes what it saw to
``assert_same_decisions``. The decisions are read from ACP's own trail (``observed``), so
every adapter is held to what ACP decided, not to what the adapter says it decided.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.loading import load_policy_file
from agent_control_plane.models import Event

POLICY_FILE = Path(__file__).resolve().parent.parent / "examples/policies/framework-scenario.yaml"
AGENT_ID = "scenario-bot"


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call the agent makes, and the decision ACP must give it."""

    tool: str
    arguments: dict[str, Any]
    outcome: str
    reason: str

    @property
    def expected(self) -> tuple[str, str, str]:
        return (self.tool, self.outcome, self.reason)


CALLS: tuple[Call, ...] = (
    Call("look_up_order", {"order": "981"}, "allowed", "tier.auto_approve:look_up_order"),
    Call("delete_customer", {"customer": "c-7"}, "denied", "tier.blocked:delete_customer"),
    Call("search_kb", {"query": "refund window"}, "allowed", "tier.auto_approve:search_kb"),
    Call("issue_refund", {"order": "981"}, "needs_approval", "tier.always_approve:issue_refund"),
    Call("send_email", {"to": "bob@example.com"}, "denied", "policy.default_deny"),
    Call("look_up_order", {"order": "982"}, "allowed", "tier.auto_approve:look_up_order"),
    # Three allowed actions spent the session's budget (the policy's limits).
    Call("search_kb", {"query": "shipping"}, "denied", "budget.max_actions"),
)

TOOL_NAMES: tuple[str, ...] = tuple(dict.fromkeys(call.tool for call in CALLS))


def expected_runs() -> list[tuple[str, dict[str, Any]]]:
    """The tool bodies that must run, in order: those of the allowed calls, and no other."""
    return [(call.tool, call.arguments) for call in CALLS if call.outcome == "allowed"]


@dataclass
class Tools:
    """The scenario's tools as plain functions, each recording that its body ran (the
    side effect that proves a refused call never ran)."""

    ran: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def look_up_order(self, order: str) -> str:
        """Look an order up."""
        self.ran.append(("look_up_order", {"order": order}))
        return f"order {order}: 25.00 USD, shipped"

    def delete_customer(self, customer: str) -> str:
        """Delete a customer and their data."""
        self.ran.append(("delete_customer", {"customer": customer}))
        return f"deleted {customer}"

    def search_kb(self, query: str) -> str:
        """Search the knowledge base."""
        self.ran.append(("search_kb", {"query": query}))
        return f"3 articles about {query}"

    def issue_refund(self, order: str) -> str:
        """Refund an order."""
        self.ran.append(("issue_refund", {"order": order}))
        return f"refunded order {order}"

    def send_email(self, to: str) -> str:
        """Send an email."""
        self.ran.append(("send_email", {"to": to}))
        return f"mailed {to}"


def _budget() -> dict[str, Any]:
    limits = load_policy_file(POLICY_FILE).limits
    return {"max_cost": limits.max_cost, "max_actions": limits.max_actions}


def open_session(cp: ControlPlane) -> uuid.UUID:
    """A session under the scenario's policy with the budget its limits set."""
    return cp.open_session(agent_id=AGENT_ID, policy=POLICY_FILE, **_budget()).id


async def aopen_session(acp: AsyncControlPlane) -> uuid.UUID:
    """The asyncio twin of :func:`open_session`."""
    return (await acp.open_session(agent_id=AGENT_ID, policy=POLICY_FILE, **_budget())).id


def observed(events: Sequence[Event]) -> list[tuple[str, str, str]]:
    """(action, outcome, reason) of each decision in a session's trail, in order."""
    return [
        (event.action or "", event.outcome or "", event.reason or "")
        for event in events
        if event.kind == "decision"
    ]


def assert_same_decisions(
    framework: str,
    decisions: Sequence[tuple[str, str, str]],
    ran: Sequence[tuple[str, dict[str, Any]]],
) -> None:
    """Fail with a call-by-call table unless ``decisions`` (see :func:`observed`) are the
    scenario's, and the tool bodies that ``ran`` are exactly those of the allowed calls."""
    expected = [call.expected for call in CALLS]
    if list(decisions) != expected:
        rows = [
            f"  {index}: expected {want}, {framework} got {got}"
            for index, (want, got) in enumerate(_padded(expected, list(decisions)))
            if want != got
        ]
        raise AssertionError(f"{framework} decided differently:\n" + "\n".join(rows))
    if list(ran) != expected_runs():
        raise AssertionError(f"{framework} ran {list(ran)}, expected {expected_runs()}")


def _padded(
    expected: list[tuple[str, str, str]], got: list[tuple[str, str, str]]
) -> list[tuple[Any, Any]]:
    size = max(len(expected), len(got))
    missing = ("-", "-", "-")
    return [
        (
            expected[index] if index < len(expected) else missing,
            got[index] if index < len(got) else missing,
        )
        for index in range(size)
    ]
