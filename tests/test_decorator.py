"""``@cp.governed``: govern first, run only if allowed, record the outcome (sync and async)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionDenied,
    ActionNotAllowed,
    ActionSteered,
    ApprovalRequired,
    InvalidInputError,
)
from agent_control_plane.models import Event

POLICY: dict[str, Any] = {
    "name": "decorated",
    "tiers": {
        "auto_approve": ["send_email", "flaky"],
        "always_approve": ["issue_refund"],
        "steer": {"close_account": "Ask the customer to confirm in writing first."},
        "blocked": ["drop_database"],
    },
}


def _session(cp: ControlPlane, max_cost: str = "1.00") -> uuid.UUID:
    return cp.open_session(agent_id="agent", policy=POLICY, max_cost=max_cost, max_actions=100).id


def _trail(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(event.kind, event.outcome) for event in events if event.kind != "session.opened"]


def test_an_allowed_call_runs_and_records_its_result(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    sent: list[str] = []

    @cp.governed(
        "send_email",
        cost="0.25",
        resource=lambda to, **_: f"mailto:{to}",
        summary=lambda result: {"message_id": result},
    )
    def send_email(to: str, body: str = "hello") -> str:
        sent.append(to)
        return f"msg-{len(sent)}"

    with cp.session_scope(sid):
        assert send_email("bob@example.com") == "msg-1"
    assert sent == ["bob@example.com"]
    events = cp.events(sid)
    assert _trail(events) == [("decision", "allowed"), ("outcome", "succeeded")]
    decision, outcome = events[-2:]
    assert decision.payload["resource"] == "mailto:bob@example.com"
    assert decision.payload["args"] == {"to": "bob@example.com", "body": "hello"}
    assert outcome.payload["result"] == {"message_id": "msg-1"}
    assert cp.get_session(sid).cost_used == Decimal("0.25")


def test_refusals_raise_before_the_function_runs(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    ran: list[str] = []

    @cp.governed("drop_database", session=sid)
    def drop() -> None:
        ran.append("drop")

    @cp.governed("close_account", session=sid)
    def close(account: str) -> None:
        ran.append("close")

    @cp.governed("issue_refund", session=lambda order, amount: sid)
    def refund(order: str, amount: str) -> str:
        ran.append("refund")
        return "refunded"

    with pytest.raises(ActionDenied) as denied:
        drop()
    assert denied.value.reason == "tier.blocked:drop_database"
    with pytest.raises(ActionSteered) as steered:
        close("A-1")
    assert steered.value.guidance == "Ask the customer to confirm in writing first."
    with pytest.raises(ApprovalRequired) as required:
        refund("order/9", "25.00")
    ticket_id = required.value.ticket_id
    assert ticket_id is not None
    # What the agent may read names the ticket and waits for a person; only the
    # operator's message says how to approve it.
    assert str(required.value) == (
        f"issue_refund needs a person's approval (tier.always_approve:issue_refund): "
        f"ticket {ticket_id} waits for a person to approve it; once a person has, the "
        "identical call goes through."
    )
    assert required.value.operator_message.endswith(
        f": acp approvals approve {ticket_id} --by NAME"
    )
    assert ran == []

    # The approved call goes through once; a different call still needs its own approval.
    cp.approve(ticket_id, by="alice")
    with pytest.raises(ApprovalRequired):
        refund("order/9", "99.00")
    assert refund("order/9", "25.00") == "refunded"
    with pytest.raises(ApprovalRequired):
        refund("order/9", "25.00")
    assert ran == ["refund"]


def test_an_exception_records_failed_and_is_re_raised(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)

    @cp.governed("flaky", session=sid, cost="0.10")
    def flaky() -> None:
        raise ConnectionError("smtp down")

    with pytest.raises(ConnectionError, match="smtp down"):
        flaky()
    outcome = cp.events(sid)[-1]
    assert (outcome.kind, outcome.outcome) == ("outcome", "failed")
    assert outcome.payload["result"] == {"error": "ConnectionError", "message": "smtp down"}


def test_budget_exhaustion_stops_the_call(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp, max_cost="0.30")
    calls: list[int] = []

    @cp.governed("send_email", session=sid, cost="0.20", args=lambda n: {"n": n})
    def send(n: int) -> None:
        calls.append(n)

    send(1)
    with pytest.raises(ActionDenied, match="budget") as denied:
        send(2)
    assert isinstance(denied.value, ActionNotAllowed)
    assert calls == [1]


def test_idempotency_key_from_the_arguments_runs_the_function_each_time(
    control_plane: ControlPlane,
) -> None:
    """The key makes govern exactly-once (one charge); the function is the caller's."""
    cp = control_plane
    sid = _session(cp)

    @cp.governed("send_email", session=sid, cost="0.10", idempotency_key=lambda step: step)
    def step(step: str) -> str:
        return step

    step("step-1")
    step("step-1")
    assert cp.get_session(sid).cost_used == Decimal("0.10")
    assert [e.kind for e in cp.events(sid)].count("decision") == 1


def test_a_session_is_required_and_the_scope_is_restored(control_plane: ControlPlane) -> None:
    cp = control_plane
    first, second = _session(cp), _session(cp)

    @cp.governed("send_email")
    def send() -> None:
        return None

    with pytest.raises(InvalidInputError, match="session_scope"):
        send()
    with cp.session_scope(first):
        with cp.session_scope(str(second)) as inner:
            assert inner == second
            send()
        send()
    assert len(cp.events(first)) == len(cp.events(second)) == 3


def test_the_wrong_kind_of_function_is_refused_at_decoration(
    control_plane: ControlPlane,
) -> None:
    async def coroutine() -> None:
        return None

    with pytest.raises(TypeError, match="AsyncControlPlane"):
        control_plane.governed("send_email")(coroutine)


async def test_async_decorator(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    session = await acp.open_session(agent_id="agent", policy=POLICY, max_cost=1, max_actions=100)
    ran: list[str] = []

    @acp.governed("send_email", cost="0.25", resource=lambda to: f"mailto:{to}")
    async def send_email(to: str) -> dict[str, str]:
        ran.append(to)
        return {"to": to}

    @acp.governed("flaky")
    async def flaky() -> None:
        raise TimeoutError("slow")

    @acp.governed("issue_refund")
    async def refund(amount: str) -> None:
        ran.append(amount)

    with acp.session_scope(session.id):
        assert await send_email("bob@example.com") == {"to": "bob@example.com"}
        with pytest.raises(TimeoutError):
            await flaky()
        with pytest.raises(ApprovalRequired) as required:
            await refund("25")
        assert required.value.ticket_id is not None
        await acp.approve(required.value.ticket_id, by="alice")
        await refund("25")
    assert ran == ["bob@example.com", "25"]
    assert _trail(await acp.events(session.id)) == [
        ("decision", "allowed"),
        ("outcome", "succeeded"),
        ("decision", "allowed"),
        ("outcome", "failed"),
        ("decision", "needs_approval"),
        ("approval.approved", "approved"),
        ("decision", "allowed"),
        ("outcome", "succeeded"),
    ]

    def plain() -> None:
        return None

    with pytest.raises(TypeError, match="ControlPlane for plain functions"):
        acp.governed("send_email")(plain)
