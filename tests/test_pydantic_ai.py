"""Pydantic AI: GovernanceCapability governs every tool call of an Agent.

Each tool appends to a list when its body runs: a refused call leaves no trace there.
The model is Pydantic AI's own FunctionModel playing a script (no network).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import (
    Agent,
    ApprovalRequired,
    DeferredToolRequests,
    DeferredToolResults,
    ModelRetry,
    RunContext,
    ToolDenied,
)
from pydantic_ai.capabilities import NativeTool
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.models.test import TestModel
from pydantic_ai.native_tools import WebSearchTool
from pydantic_ai.toolsets import FunctionToolset

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ConfigurationError,
    InvalidInputError,
    TokenBudgetExhausted,
)
from agent_control_plane.integrations.pydantic_ai import (
    APPROVAL,
    GovernanceCapability,
    acp_decides,
)
from agent_control_plane.rules.tokens import Identity
from tests.pydantic_ai_helpers import Script, close_thread_loop, tool_returns, turn

POLICY: dict[str, Any] = {
    "name": "pydantic-ai",
    "tiers": {
        "unrestricted": [
            "look_up_order",
            "flaky_lookup",
            "picky_lookup",
            "missing_lookup",
            "slow_lookup",
            "reserved_lookup",
            "ship_order",
        ],
        "blocked": ["delete_customer"],
        "always_approve": ["issue_refund"],
    },
}
PRICES = {"scripted": {"input": "1", "output": "2"}}
OUTPUT: Any = [str, DeferredToolRequests]


@pytest.fixture(autouse=True)
def _close_run_sync_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not inspect.iscoroutinefunction(request.function):
        close_thread_loop()


class World:
    """What the tools really did."""

    def __init__(self, refund_seconds: float = 0) -> None:
        self.looked_up: list[str] = []
        self.deleted: list[str] = []
        self.refunded: list[str] = []
        self.shipped: list[str] = []
        self._refund_seconds = refund_seconds
        self._lock = threading.Lock()

    def tools(self) -> list[Any]:
        def look_up_order(order: str) -> str:
            """Look an order up."""
            self.looked_up.append(order)
            return f"order {order}: 25.00 USD"

        def delete_customer(customer: str) -> str:
            """Delete a customer."""
            self.deleted.append(customer)
            return "deleted"

        def issue_refund(order: str) -> str:
            """Refund an order."""
            time.sleep(self._refund_seconds)  # the payment provider takes its time
            with self._lock:
                self.refunded.append(order)
            return f"refunded order {order}"

        def flaky_lookup(order: str) -> str:
            """Fail with an exception the agent does not handle."""
            raise RuntimeError("warehouse offline")

        def picky_lookup(order: str) -> str:
            """Ask the model to try again."""
            raise ModelRetry("give the order number with its prefix")

        def missing_lookup(order: str) -> str:
            """Report a failure to the model."""
            raise ToolFailed(f"order {order} does not exist")

        async def slow_lookup(order: str) -> str:
            """Take a long time."""
            await asyncio.sleep(30)
            return "too late"

        def reserved_lookup(ctx: RunContext[Any], order: str) -> str:
            """Ask for the application's own approval first."""
            if not ctx.tool_call_approved:
                raise ApprovalRequired(metadata={"why": "reserved"})
            self.looked_up.append(order)
            return f"order {order}: reserved"

        return [
            look_up_order,
            delete_customer,
            issue_refund,
            flaky_lookup,
            picky_lookup,
            missing_lookup,
            slow_lookup,
            reserved_lookup,
        ]


def _agent(
    cp: ControlPlane | AsyncControlPlane,
    world: World,
    script: Script,
    session_id: uuid.UUID | None,
    **options: Any,
) -> Agent[None, Any]:
    governance = GovernanceCapability(cp, session_id, **options)
    return Agent(script.model, output_type=OUTPUT, tools=world.tools(), capabilities=[governance])


def _session(cp: ControlPlane) -> uuid.UUID:
    return cp.open_session(agent_id="pai-bot", policy=POLICY, max_cost=10, max_actions=10).id


async def _asession(acp: AsyncControlPlane) -> uuid.UUID:
    opened = await acp.open_session(agent_id="pai-bot", policy=POLICY, max_cost=10, max_actions=10)
    return opened.id


def _trail(cp: ControlPlane, sid: uuid.UUID) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.action, e.outcome) for e in cp.events(sid) if e.kind != "session.opened"]


def _refund() -> list[tuple[str, str, dict[str, Any]]]:
    return turn(("issue_refund", "call_1", {"order": "981"}))


def test_an_allowed_call_is_charged_then_recorded(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(turn(("look_up_order", "call_1", {"order": "981"})), "Order 981 is 25 USD.")
    done = _agent(cp, world, script, sid).run_sync("Where is 981?")

    assert done.output == "Order 981 is 25 USD."
    assert world.looked_up == ["981"]
    (shown,) = script.tool_returns()
    assert (shown.content, shown.outcome) == ("order 981: 25.00 USD", "success")
    assert _trail(cp, sid) == [
        ("decision", "look_up_order", "allowed"),
        ("outcome", "look_up_order", "succeeded"),
    ]
    (decision,) = [e for e in cp.events(sid) if e.kind == "decision"]
    correlation = (decision.payload or {})["context"]["pydantic_ai"]
    assert (correlation["tool_call_id"], correlation["run_id"]) == ("call_1", done.run_id)
    assert cp.get_session(sid).actions_used == 1
    assert cp.verify_audit(sid).ok


def test_a_blocked_call_never_runs_and_the_model_reads_why(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(turn(("delete_customer", "call_1", {"customer": "c-7"})), "I cannot.")
    _agent(cp, world, script, sid).run_sync("Delete me.")

    assert world.deleted == []
    (shown,) = script.tool_returns()
    assert shown.outcome == "failed"
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in str(shown.content)
    assert _trail(cp, sid) == [("decision", "delete_customer", "denied")]
    assert cp.get_session(sid).actions_used == 0


def test_failures_are_recorded_failed(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    # Failures the model reads: ToolFailed, and ModelRetry (the model is asked again).
    script = Script(
        turn(("missing_lookup", "call_1", {"order": "1"})),
        turn(("picky_lookup", "call_2", {"order": "2"})),
        "Sorry.",
    )
    _agent(cp, world, script, sid).run_sync("Look them up.")
    # An exception nobody handles: it ends the run, and ACP still says failed.
    script = Script(turn(("flaky_lookup", "call_3", {"order": "3"})), "Sorry.")
    with pytest.raises(RuntimeError, match="warehouse offline"):
        _agent(cp, world, script, sid).run_sync("Look it up.")

    outcomes = [e for e in cp.events(sid) if e.kind == "outcome"]
    assert [(e.action, e.outcome) for e in outcomes] == [
        ("missing_lookup", "failed"),
        ("picky_lookup", "failed"),
        ("flaky_lookup", "failed"),
    ]
    assert "order 1 does not exist" in str(outcomes[0].payload)
    assert "warehouse offline" in str(outcomes[2].payload)
    assert cp.get_session(sid).actions_used == 3


async def test_a_cancelled_call_is_recorded_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp, world = async_control_plane, World()
    sid = await _asession(acp)
    script = Script(turn(("slow_lookup", "call_1", {"order": "3"})), "late")
    agent = _agent(acp, world, script, sid)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agent.run("Look it up."), timeout=1.0)
    (outcome,) = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert (outcome.action, outcome.outcome) == ("slow_lookup", "cancelled")


def test_an_approval_defers_the_call_and_acps_ticket_decides(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    agent = _agent(cp, world, Script(_refund(), "Refunded."), sid)

    paused = agent.run_sync("Refund 981.")
    requests = paused.output
    assert isinstance(requests, DeferredToolRequests)
    (call,) = requests.approvals
    assert (call.tool_name, call.tool_call_id, call.args) == (
        "issue_refund",
        "call_1",
        {"order": "981"},
    )
    asked = requests.metadata["call_1"]
    assert (asked["type"], asked["action"]) == (APPROVAL, "issue_refund")
    ticket = asked["ticket_id"]
    assert cp.get_ticket(ticket).pending

    # Approving in Pydantic AI while ACP's ticket is pending runs nothing: deferred again.
    everything = requests.build_results(approve_all=True)
    again = agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=everything)
    assert isinstance(again.output, DeferredToolRequests)
    assert again.output.metadata["call_1"]["ticket_id"] == ticket
    assert world.refunded == []

    cp.approve(ticket, "alice")
    history = again.all_messages()
    done = agent.run_sync(message_history=history, deferred_tool_results=acp_decides(again.output))
    assert done.output == "Refunded."
    assert world.refunded == ["981"]
    assert cp.get_ticket(ticket).status == "consumed"
    # The same resume run again (a retry of it): the refund is not paid twice, the
    # recorded result is what the model reads.
    replayed = agent.run_sync(
        message_history=history, deferred_tool_results=acp_decides(again.output)
    )
    assert world.refunded == ["981"]
    assert [p.content for p in tool_returns(replayed.new_messages())] == ["refunded order 981"]
    assert _trail(cp, sid) == [
        ("decision", "issue_refund", "needs_approval"),
        ("decision", "issue_refund", "needs_approval"),  # asked again on the early resume
        ("approval.approved", "issue_refund", "approved"),
        ("decision", "issue_refund", "allowed"),
        ("outcome", "issue_refund", "succeeded"),
    ]
    assert cp.get_session(sid).actions_used == 1


class Receipt(BaseModel):
    order: str
    amount: Decimal
    paid_on: date


def test_a_replayed_call_shows_the_model_what_the_tool_returned(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    paid: list[str] = []

    def issue_refund(order: str) -> Receipt:
        """Refund an order."""
        paid.append(order)
        return Receipt(order=order, amount=Decimal("25.00"), paid_on=date(2026, 1, 2))

    script = Script(_refund(), "Refunded.", "Refunded.")
    agent = Agent(
        script.model,
        output_type=OUTPUT,
        tools=[issue_refund],
        capabilities=[GovernanceCapability(cp, sid)],
    )
    paused = agent.run_sync("Refund 981.")
    cp.approve(paused.output.metadata["call_1"]["ticket_id"], "alice")
    history, results = paused.all_messages(), acp_decides(paused.output)
    ran = agent.run_sync(message_history=history, deferred_tool_results=results)
    replayed = agent.run_sync(message_history=history, deferred_tool_results=results)
    assert paid == ["981"]
    (live,) = tool_returns(ran.new_messages())
    (again,) = tool_returns(replayed.new_messages())
    # The same JSON (the database keeps an object's keys in an order of its own).
    shown = json.loads(again.model_response_str())
    assert shown == json.loads(live.model_response_str())
    assert shown == {"order": "981", "amount": "25.00", "paid_on": "2026-01-02"}


def test_a_denied_ticket_refuses_the_resumed_call(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(_refund(), "The refund was refused.")
    agent = _agent(cp, world, script, sid)
    paused = agent.run_sync("Refund 981.")
    ticket = paused.output.metadata["call_1"]["ticket_id"]
    cp.deny(ticket, "bob", "already refunded")

    done = agent.run_sync(
        message_history=paused.all_messages(), deferred_tool_results=acp_decides(paused.output)
    )
    assert done.output == "The refund was refused."
    assert world.refunded == []
    (shown,) = script.tool_returns()
    assert shown.outcome == "failed"
    assert f"approval.denied:{ticket}" in str(shown.content)
    assert cp.get_session(sid).actions_used == 0


def test_denying_in_pydantic_ai_runs_nothing(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    agent = _agent(cp, world, Script(_refund(), "Not refunded."), sid)
    paused = agent.run_sync("Refund 981.")
    ticket = paused.output.metadata["call_1"]["ticket_id"]
    cp.approve(ticket, "alice")
    denied = DeferredToolResults(approvals={"call_1": ToolDenied("The customer withdrew.")})
    agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=denied)
    assert world.refunded == []
    assert cp.get_ticket(ticket).status == "approved"  # not used: the call never ran


def test_a_call_that_failed_is_not_run_again_by_a_resume(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    attempts: list[str] = []

    def issue_refund(order: str) -> str:
        """Refund an order."""
        attempts.append(order)
        raise RuntimeError("payment provider unreachable")

    script = Script(_refund(), _refund(), "Sorry.")
    agent = Agent(
        script.model,
        output_type=OUTPUT,
        tools=[issue_refund],
        capabilities=[GovernanceCapability(cp, sid)],
    )
    paused = agent.run_sync("Refund 981.")
    cp.approve(paused.output.metadata["call_1"]["ticket_id"], "alice")
    history, results = paused.all_messages(), acp_decides(paused.output)
    with pytest.raises(RuntimeError, match="payment provider unreachable"):
        agent.run_sync(message_history=history, deferred_tool_results=results)
    # Resumed again from the same history: the claimed, failed call is not paid twice.
    script.answers = ["Sorry."]
    done = agent.run_sync(message_history=history, deferred_tool_results=results)
    assert attempts == ["981"]
    assert done.output == "Sorry."
    (shown,) = script.tool_returns()
    assert shown.outcome == "failed"
    assert "issue_refund failed in an earlier execution" in str(shown.content)
    assert [e.outcome for e in cp.events(sid) if e.kind == "outcome"] == ["failed"]


def test_the_applications_own_approval_comes_first(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(turn(("reserved_lookup", "call_1", {"order": "7"})), "Reserved.")
    agent = _agent(cp, world, script, sid)
    paused = agent.run_sync("Look up 7.")
    assert paused.output.metadata["call_1"] == {"why": "reserved"}
    # Not an ACP ticket: acp_decides leaves it to the application.
    assert acp_decides(paused.output).approvals == {}
    # The tool deferred itself under ACP's decision; approved, it is governed anew.
    approved = DeferredToolResults(approvals={"call_1": True})
    done = agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=approved)
    assert done.output == "Reserved."
    assert world.looked_up == ["7"]
    assert [(e.action, e.outcome) for e in cp.events(sid) if e.kind == "outcome"] == [
        ("reserved_lookup", "cancelled"),  # deferred: its body did nothing, cost 0
        ("reserved_lookup", "succeeded"),
    ]


def test_a_tool_that_requires_approval_is_governed_once_approved(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    shipped: list[str] = []
    script = Script(turn(("ship_order", "call_1", {"order": "5"})), "Shipped.")
    agent: Agent[None, Any] = Agent(
        script.model, output_type=OUTPUT, capabilities=[GovernanceCapability(cp, sid)]
    )

    @agent.tool_plain(requires_approval=True)
    def ship_order(order: str) -> str:
        """Ship an order."""
        shipped.append(order)
        return f"shipped {order}"

    paused = agent.run_sync("Ship 5.")
    assert _trail(cp, sid) == []  # Pydantic AI deferred it before ACP was asked
    approved = paused.output.build_results(approve_all=True)
    agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=approved)
    assert shipped == ["5"]
    assert _trail(cp, sid) == [
        ("decision", "ship_order", "allowed"),
        ("outcome", "ship_order", "succeeded"),
    ]


def test_model_approvals_refuse_then_run_when_asked_again(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(_refund(), "Waiting for approval.")
    _agent(cp, world, script, sid, approvals="model").run_sync("Refund 981.")
    (shown,) = script.tool_returns()
    (ticket,) = cp.list_tickets(session_id=sid, status="pending").items
    assert f"A person must approve it first (ticket {ticket.id})" in str(shown.content)
    assert world.refunded == []

    cp.approve(ticket.id, "alice")
    script = Script(_refund(), "Refunded.")  # the model asks again
    _agent(cp, world, script, sid, approvals="model").run_sync("Refund 981 now.")
    assert world.refunded == ["981"]
    assert cp.get_ticket(ticket.id).status == "consumed"


def test_a_run_can_wait_inline_for_acps_ticket(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)

    def approve_soon() -> None:
        while not (pending := cp.list_tickets(session_id=sid, status="pending").items):
            time.sleep(0.05)
        cp.approve(pending[0].id, "alice")

    approver = threading.Thread(target=approve_soon)
    approver.start()
    script = Script(_refund(), "Refunded.")
    done = _agent(cp, world, script, sid, approval_wait=30).run_sync("Refund 981.")
    approver.join(timeout=30)
    assert done.output == "Refunded."  # one run: it waited for the person
    assert world.refunded == ["981"]

    # Nobody answers in time: the run ends with the call deferred, nothing paid.
    script = Script(turn(("issue_refund", "call_9", {"order": "982"})), "unused")
    paused = _agent(cp, world, script, sid, approval_wait=0.2).run_sync("Refund 982.")
    assert isinstance(paused.output, DeferredToolRequests)
    assert world.refunded == ["981"]


def test_reused_call_ids_are_each_governed(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    same = ("look_up_order", "call_0", {"order": "981"})
    delete = ("delete_customer", "call_0", {"customer": "c-7"})
    script = Script(turn(same), turn(same), turn(delete), "done")
    _agent(cp, world, script, sid).run_sync("Look twice.")
    # Two model responses asked the same thing under the same id: two calls, two charges.
    assert world.looked_up == ["981", "981"]
    assert world.deleted == []
    decisions = [(e.action, e.outcome) for e in cp.events(sid) if e.kind == "decision"]
    assert decisions == [
        ("look_up_order", "allowed"),
        ("look_up_order", "allowed"),
        ("delete_customer", "denied"),
    ]
    assert cp.get_session(sid).actions_used == 2


def test_tools_of_every_toolset_are_governed(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    deleted: list[str] = []
    admin: FunctionToolset[None] = FunctionToolset()

    @admin.tool_plain
    def delete_customer(customer: str) -> str:
        """Delete a customer."""
        deleted.append(customer)
        return "deleted"

    script = Script(turn(("delete_customer", "call_1", {"customer": "c-7"})), "No.")
    agent = Agent(
        script.model,
        output_type=OUTPUT,
        toolsets=[admin],
        capabilities=[GovernanceCapability(cp, sid)],
    )
    agent.run_sync("Delete c-7.")
    assert deleted == []
    assert _trail(cp, sid) == [("decision", "delete_customer", "denied")]


def test_with_pydantic_ais_test_model(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = TestModel(call_tools=["look_up_order", "delete_customer"])
    agent = Agent(model, tools=world.tools(), capabilities=[GovernanceCapability(cp, sid)])
    agent.run_sync("Go.")
    assert (len(world.looked_up), world.deleted) == (1, [])
    decisions = {e.action: e.outcome for e in cp.events(sid) if e.kind == "decision"}
    assert decisions == {"look_up_order": "allowed", "delete_customer": "denied"}


def test_model_requests_are_checked_against_token_budgets(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    cp.set_prices(PRICES)
    sid = _session(cp)
    cp.set_token_budget(Identity(agent="pai-bot"), "day", max_tokens=300)
    look = turn(("look_up_order", "call_1", {"order": "981"}))
    script = Script(look, "Order 981 is 25 USD.", usage=(100, 20))
    done = _agent(cp, world, script, sid, model="scripted").run_sync("Where is 981?")
    (used,) = cp.token_usage(group_by=["agent"])
    # What ACP charged is the run's own RunUsage.
    assert (used["input_tokens"], used["output_tokens"]) == (
        done.usage.input_tokens,
        done.usage.output_tokens,
    )
    assert (used["total_tokens"], used["requests"]) == (240, 2)

    # 240 of 300: the next request is sent, and its usage takes the day past the limit.
    script = Script("Hello again.", usage=(100, 20))
    with pytest.raises(TokenBudgetExhausted):
        _agent(cp, world, script, sid, model="scripted").run_sync("Hi.")
    assert len(script.seen) == 1
    # Now spent: refused before the model is called.
    script = Script("Hi?", usage=(100, 20))
    with pytest.raises(TokenBudgetExhausted):
        _agent(cp, world, script, sid, model="scripted").run_sync("Hi.")
    assert script.seen == []
    assert cp.token_usage(group_by=["agent"])[0]["total_tokens"] == 360


def test_native_tools_are_refused_before_the_model_is_called(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    script = Script("unused")
    agent: Agent[None, str] = Agent(
        script.model,
        capabilities=[NativeTool(WebSearchTool()), GovernanceCapability(cp, sid)],
    )
    with pytest.raises(ConfigurationError, match="WebSearchTool"):
        agent.run_sync("Search the web.")
    assert script.seen == []


def test_the_session_can_come_from_the_runs_metadata(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    script = Script(turn(("look_up_order", "call_1", {"order": "5"})), "ok")
    _agent(cp, world, script, None).run_sync("Go.", metadata={"acp_session_id": str(sid)})
    assert cp.get_session(sid).actions_used == 1

    script = Script(turn(("look_up_order", "call_1", {"order": "6"})), "ok")
    with pytest.raises(ConfigurationError, match="acp_session_id"):
        _agent(cp, world, script, None).run_sync("Go.")
    assert world.looked_up == ["5"]


def test_a_runs_own_capability_replaces_the_agents(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    first, second = _session(cp), _session(cp)
    script = Script(turn(("look_up_order", "call_1", {"order": "5"})), "ok")
    agent = _agent(cp, world, script, first)
    agent.run_sync("Go.", capabilities=[GovernanceCapability(cp, second)])
    assert (cp.get_session(first).actions_used, cp.get_session(second).actions_used) == (0, 1)


async def test_async_agent_approve_and_deny(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    for answer in ("approve", "deny"):
        sid = await _asession(acp)
        agent = _agent(acp, world, Script(_refund(), "ok"), sid)
        paused = await agent.run("Refund 981.")
        ticket = paused.output.metadata["call_1"]["ticket_id"]
        if answer == "approve":
            await acp.approve(ticket, "alice")
        else:
            await acp.deny(ticket, "bob", "no")
        await agent.run(
            message_history=paused.all_messages(), deferred_tool_results=acp_decides(paused.output)
        )
    assert world.refunded == ["981"]


async def test_a_sync_control_plane_serves_async_runs(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    look = ("look_up_order", "c1", {"order": "7"})
    delete = ("delete_customer", "c2", {"customer": "c"})
    await _agent(cp, world, Script(turn(look, delete), "ok"), sid).run("Go.")
    assert (world.looked_up, world.deleted) == (["7"], [])
    decisions = {e.action: e.outcome for e in cp.events(sid) if e.kind == "decision"}
    assert decisions == {"look_up_order": "allowed", "delete_customer": "denied"}


def test_settings_are_checked_when_made(tmp_path: Path) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        with pytest.raises(ConfigurationError, match="approvals"):
            GovernanceCapability(cp, uuid.uuid4(), approvals="ask")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="wait"):
            GovernanceCapability(cp, uuid.uuid4(), wait=-1)
        with pytest.raises(InvalidInputError, match="approval_wait"):
            GovernanceCapability(cp, uuid.uuid4(), approval_wait=-1)
        with pytest.raises(ConfigurationError, match="costs"):
            GovernanceCapability(cp, uuid.uuid4(), costs=3)  # type: ignore[arg-type]


def test_importing_the_package_does_not_import_pydantic_ai() -> None:
    code = (
        "import sys, agent_control_plane, agent_control_plane.integrations;"
        "print('pydantic_ai' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


# -- two runs resume the same approved call at the same moment -----------------------------

ROUNDS = 6
REFUND_SECONDS = 0.3


def _resume(
    agent: Agent[None, Any],
    paused: Any,
    barrier: threading.Barrier,
    shown: list[list[Any]],
) -> None:
    barrier.wait()
    try:
        done = agent.run_sync(
            message_history=paused.all_messages(), deferred_tool_results=acp_decides(paused.output)
        )
    finally:
        close_thread_loop()
    shown.append([part.content for part in tool_returns(done.new_messages())])


def test_concurrent_resumes_of_one_approved_call_run_it_once(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    first, second = two_control_planes
    world = World(refund_seconds=REFUND_SECONDS)
    for _ in range(ROUNDS):
        sid = _session(first)
        paused = _agent(first, world, Script(_refund()), sid).run_sync("Refund 981.")
        first.approve(paused.output.metadata["call_1"]["ticket_id"], "alice")
        before = len(world.refunded)
        barrier = threading.Barrier(2)
        shown: list[list[Any]] = []
        # Each resumes with its own ACP connection and agent; the model's next answer.
        resumers = [_agent(cp, world, Script("Refunded."), sid) for cp in (first, second)]
        threads = [
            threading.Thread(target=_resume, args=(resumer, paused, barrier, shown))
            for resumer in resumers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(world.refunded) - before == 1, "the refund was paid twice"
        # The run that did not run it read the recorded result.
        assert shown == [["refunded order 981"], ["refunded order 981"]]
        decisions = [e for e in first.events(sid) if e.kind == "decision"]
        outcomes = [e for e in first.events(sid) if e.kind == "outcome"]
        assert [d.outcome for d in decisions] == ["needs_approval", "allowed"]
        assert len(outcomes) == 1
        assert first.get_session(sid).actions_used == 1
    assert world.refunded == ["981"] * ROUNDS
