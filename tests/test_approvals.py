"""Human approvals: tickets bound to one action, one winning decision, honoured once."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import InvalidInputError, InvalidTransitionError
from agent_control_plane.models import Decision, Outcome
from tests.databases import TestDatabase
from tests.test_concurrency import all_events

POLICY: dict[str, Any] = {
    "name": "approvals",
    "tiers": {"always_approve": ["issue_refund", "send_email"], "auto_approve": ["read"]},
    "approval_timeout": "1h",
}


def _session(cp: ControlPlane, policy: dict[str, Any] = POLICY, **options: Any) -> uuid.UUID:
    return cp.open_session(
        agent_id="agent",
        policy=policy,
        max_cost=options.pop("max_cost", 100),
        max_actions=options.pop("max_actions", 1000),
        **options,
    ).id


def _refund(cp: ControlPlane, sid: uuid.UUID, amount: str = "25", **kw: Any) -> Decision:
    return cp.govern(
        sid, "issue_refund", resource="order/1", args={"amount": amount}, cost="0.5", **kw
    )


def test_approved_once_is_honoured_exactly_once(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    first = _refund(cp, sid)
    assert (first.outcome, first.reason) == (
        Outcome.NEEDS_APPROVAL,
        "tier.always_approve:issue_refund",
    )
    assert first.ticket_id is not None
    assert _refund(cp, sid).ticket_id == first.ticket_id  # the same pending ticket
    other = _refund(cp, sid, amount="99")
    assert other.ticket_id != first.ticket_id  # other arguments: their own approval
    ticket = cp.get_ticket(first.ticket_id)
    assert (ticket.status, ticket.action, ticket.resource) == ("pending", "issue_refund", "order/1")
    assert ticket.expires_at is not None
    assert ticket.expires_at - ticket.requested_at == timedelta(hours=1)

    approved = cp.approve(first.ticket_id, "alice", reason="verified by phone")
    assert (approved.status, approved.decided_by, approved.scope) == ("approved", "alice", "once")
    honoured = _refund(cp, sid)
    assert (honoured.outcome, honoured.charged) == (Outcome.ALLOWED, True)
    assert honoured.reason == f"approval.once:{first.ticket_id}"
    assert cp.get_ticket(first.ticket_id).status == "consumed"
    again = _refund(cp, sid)
    assert again.outcome is Outcome.NEEDS_APPROVAL
    assert again.ticket_id not in (None, first.ticket_id)
    session = cp.get_session(sid)
    assert (session.actions_used, session.cost_used) == (1, Decimal("0.5"))
    kinds = [e.kind for e in cp.events(sid)]
    assert kinds.count("approval.approved") == 1
    assert cp.verify_audit(sid).ok


def test_denial_and_expiry_are_final(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    ticket_id = _refund(cp, sid).ticket_id
    assert ticket_id is not None
    assert cp.deny(ticket_id, "bob", "not this customer").status == "denied"
    with pytest.raises(InvalidTransitionError, match="already denied"):
        cp.approve(ticket_id, "alice")
    assert _refund(cp, sid).ticket_id != ticket_id

    quick = {**POLICY, "name": "quick", "approval_timeout": "1ms"}
    fast = _session(cp, quick)
    expiring = _refund(cp, fast).ticket_id
    assert expiring is not None
    time.sleep(0.01)
    with pytest.raises(InvalidTransitionError, match="already expired"):
        cp.approve(expiring, "alice")
    assert cp.expire_tickets() >= 1
    assert cp.expire_tickets() == 0
    assert cp.get_ticket(expiring).status == "expired"
    assert [e.kind for e in cp.events(fast)].count("approval.expired") == 1
    with pytest.raises(InvalidInputError, match="scope"):
        cp.approve(ticket_id, "alice", scope="forever")


def test_session_scope_limits(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    email = {"to": "a@example.com"}
    ticket_id = cp.govern(sid, "send_email", resource="mail/1", args=email, cost="0.1").ticket_id
    assert ticket_id is not None
    cp.approve(
        ticket_id,
        "alice",
        scope="session",
        scope_limits={"resources": ["mail/*"], "max_count": 2, "max_cost": "0.15"},
    )
    first = cp.govern(sid, "send_email", resource="mail/2", args={"to": "b"}, cost="0.1")
    assert first.reason == f"approval.session:{ticket_id}"
    over_cost = cp.govern(sid, "send_email", resource="mail/3", args={"to": "c"}, cost="0.1")
    assert over_cost.outcome is Outcome.NEEDS_APPROVAL
    assert cp.govern(sid, "send_email", resource="mail/3", args={"to": "c"}, cost="0.05").allowed
    outside = cp.govern(sid, "send_email", resource="sms/1", args={"to": "d"}, cost="0")
    assert outside.outcome is Outcome.NEEDS_APPROVAL
    exhausted = cp.govern(sid, "send_email", resource="mail/4", args={"to": "e"}, cost="0")
    assert exhausted.outcome is Outcome.NEEDS_APPROVAL  # max_count 2 used up
    zero_id = cp.govern(sid, "issue_refund", args={"z": 1}, cost="0").ticket_id
    assert zero_id is not None
    cp.approve(zero_id, "alice", scope="session", scope_limits={"max_count": 0})
    assert cp.govern(sid, "issue_refund", args={"z": 2}, cost="0").outcome is Outcome.NEEDS_APPROVAL
    ticket = cp.get_ticket(ticket_id)
    assert (ticket.scope_used_count, ticket.scope_used_cost) == (2, Decimal("0.15"))


def test_concurrent_decisions_one_wins_and_retries_execute_once(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    ticket_id = _refund(cp, sid).ticket_id
    assert ticket_id is not None
    barrier = threading.Barrier(8)

    def decide(index: int) -> str:
        barrier.wait()
        try:
            if index % 2:
                cp.deny(ticket_id, f"approver-{index}", "no")
            else:
                cp.approve(ticket_id, f"approver-{index}")
        except InvalidTransitionError:
            return "lost"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(decide, range(8)))
    assert results.count("won") == 1
    ticket = cp.get_ticket(ticket_id)
    decided = [e for e in cp.events(sid) if e.kind in ("approval.approved", "approval.denied")]
    assert len(decided) == 1
    if ticket.status == "denied":
        return  # a denial won; nothing may execute
    retry_barrier = threading.Barrier(8)

    def retry(_: int) -> Decision:
        retry_barrier.wait()
        return _refund(cp, sid)

    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(retry, range(8)))
    assert sum(d.allowed for d in decisions) == 1
    assert cp.get_session(sid).actions_used == 1
    assert len({d.ticket_id for d in decisions if not d.allowed}) == 1  # one new pending ticket


def test_a_session_scope_is_used_exactly_its_count_under_concurrency(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    ticket_id = cp.govern(sid, "send_email", args={"n": -1}, cost="0").ticket_id
    assert ticket_id is not None
    cp.approve(ticket_id, "alice", scope="session", scope_limits={"max_count": 5})
    barrier = threading.Barrier(16)

    def use(index: int) -> Decision:
        barrier.wait()
        return cp.govern(sid, "send_email", args={"n": index}, cost="0.01")

    with ThreadPoolExecutor(16) as pool:
        decisions = list(pool.map(use, range(16)))
    assert sum(d.allowed for d in decisions) == 5
    assert cp.get_ticket(ticket_id).scope_used_count == 5
    assert cp.get_session(sid).actions_used == 5


def _sweep(url: str, barrier: Any) -> int:
    barrier.wait()
    with ControlPlane.open(url, migrate="verify") as cp:
        return cp.expire_tickets()


@pytest.mark.slow
def test_concurrent_expiry_sweeps_expire_each_ticket_once(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    quick = {**POLICY, "name": "quick", "approval_timeout": "1ms"}
    sessions = [_session(cp, quick) for _ in range(5)]
    for sid in sessions:
        for n in range(6):
            cp.govern(sid, "issue_refund", args={"n": n}, cost="0")
    time.sleep(0.01)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            counts = [
                f.result(timeout=120)
                for f in [pool.submit(_sweep, database.url_string, barrier) for _ in range(4)]
            ]
    assert sum(counts) == 30
    for sid in sessions:
        assert [e.kind for e in all_events(cp, sid)].count("approval.expired") == 6
    assert cp.list_tickets(status="pending").items == []
    assert cp.verify_audit().ok


def test_wait_for_decision(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    ticket_id = _refund(cp, sid).ticket_id
    assert ticket_id is not None
    started = time.monotonic()
    assert cp.wait_for_decision(ticket_id, timeout=0.2).status == "pending"
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, lambda: cp.approve(ticket_id, "alice")).start()
    assert cp.wait_for_decision(ticket_id, timeout=10).status == "approved"
    page = cp.list_tickets(session_id=sid, limit=1)
    assert [t.id for t in page.items] == [ticket_id]


async def test_async_approvals(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    session = await acp.open_session(agent_id="a", policy=POLICY, max_cost=10, max_actions=10)
    first = await acp.govern(session.id, "issue_refund", args={"a": 1}, cost="1")
    assert first.ticket_id is not None
    waiter = acp.wait_for_decision(first.ticket_id, timeout=10)
    await acp.approve(first.ticket_id, "alice")
    assert (await waiter).status == "approved"
    honoured = await acp.govern(session.id, "issue_refund", args={"a": 1}, cost="1")
    assert honoured.allowed


def test_a_retry_with_the_same_key_consumes_the_approval(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    pending = _refund(cp, sid, idempotency_key="refund-1")
    assert pending.outcome is Outcome.NEEDS_APPROVAL
    assert _refund(cp, sid, idempotency_key="refund-1").ticket_id == pending.ticket_id
    assert pending.ticket_id is not None
    cp.approve(pending.ticket_id, "alice")
    honoured = _refund(cp, sid, idempotency_key="refund-1")
    assert (honoured.outcome, honoured.reason) == (
        Outcome.ALLOWED,
        f"approval.once:{pending.ticket_id}",
    )
    assert _refund(cp, sid, idempotency_key="refund-1") == honoured  # now final: replayed
    assert cp.get_session(sid).actions_used == 1


def test_a_denied_ticket_answers_its_key_for_good(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    pending = _refund(cp, sid, idempotency_key="refund-2")
    assert pending.ticket_id is not None
    cp.deny(pending.ticket_id, "bob", "not this one")
    refused = _refund(cp, sid, idempotency_key="refund-2")
    assert (refused.outcome, refused.reason) == (
        Outcome.DENIED,
        f"approval.denied:{pending.ticket_id}",
    )
    assert _refund(cp, sid, idempotency_key="refund-2") == refused  # final: replayed
    assert cp.list_tickets(session_id=sid, status="pending").items == []
    asked_again = _refund(cp, sid, idempotency_key="refund-3")  # a new request asks again
    assert asked_again.outcome is Outcome.NEEDS_APPROVAL
    assert asked_again.ticket_id not in (None, pending.ticket_id)
    assert cp.get_session(sid).actions_used == 0
