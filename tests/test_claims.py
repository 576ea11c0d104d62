"""Claims: an allowed action runs at most once among every call with its idempotency key."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionInProgressError,
    InvalidInputError,
)
from agent_control_plane.models import Decision, Outcome
from tests.policies import SUPPORT_BOT


def _session(cp: ControlPlane) -> uuid.UUID:
    return cp.open_session(agent_id="bot-1", policy=SUPPORT_BOT, max_cost=10, max_actions=20).id


def test_a_claim_needs_an_idempotency_key(control_plane: ControlPlane) -> None:
    sid = _session(control_plane)
    with pytest.raises(InvalidInputError, match="claim: needs an idempotency_key"):
        control_plane.govern(sid, "read_ticket", claim=True)
    assert control_plane.get_session(sid).actions_used == 0


def test_only_the_first_call_holds_the_claim_and_the_others_get_its_outcome(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    first = cp.govern(sid, "read_ticket", idempotency_key="read-1", claim=True)
    again = cp.govern(sid, "read_ticket", idempotency_key="read-1", claim=True)
    assert (first.allowed, first.claimed) == (True, True)
    assert (again.allowed, again.claimed) == (True, False)
    assert replace(again, claimed=True) == first
    assert cp.outcome_of(again) is None
    started = time.monotonic()
    with pytest.raises(ActionInProgressError, match=r"no recorded outcome after waiting 0\.2s"):
        cp.wait_for_outcome(again, timeout=0.2)
    assert time.monotonic() - started >= 0.2

    threading.Timer(0.1, lambda: cp.record_outcome(first, "succeeded", result={"n": 1})).start()
    outcome = cp.wait_for_outcome(again, timeout=10)
    assert (outcome.kind, outcome.outcome) == ("outcome", "succeeded")
    assert outcome.payload is not None
    assert outcome.payload["result"] == {"n": 1}
    assert cp.outcome_of(first) == outcome
    decision_event = next(e for e in cp.events(sid) if e.seq == first.event_seq)
    assert decision_event.payload is not None
    assert decision_event.payload["claimed"] is True
    assert cp.get_session(sid).actions_used == 1


def test_refused_and_unclaimed_decisions_claim_nothing(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    pending = cp.govern(sid, "issue_refund", idempotency_key="refund-1", claim=True)
    assert (pending.outcome, pending.claimed) == (Outcome.NEEDS_APPROVAL, False)
    blocked = cp.govern(sid, "drop_database", idempotency_key="drop-1", claim=True)
    assert (blocked.allowed, blocked.claimed) == (False, False)
    plain = cp.govern(sid, "read_ticket", idempotency_key="read-2")
    assert (plain.allowed, plain.claimed) == (True, False)
    # A decision recorded without a claim (e.g. before an upgrade) is never claimed later.
    retried = cp.govern(sid, "read_ticket", idempotency_key="read-2", claim=True)
    assert (retried.event_seq, retried.claimed) == (plain.event_seq, False)


def test_concurrent_calls_with_one_key_elect_one_claimant(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    pending = cp.govern(sid, "issue_refund", args={"order": 7}, idempotency_key="r", claim=True)
    assert pending.ticket_id is not None
    cp.approve(pending.ticket_id, "alice")
    barrier = threading.Barrier(8)

    def resume(_: int) -> Decision:
        barrier.wait()
        return cp.govern(sid, "issue_refund", args={"order": 7}, idempotency_key="r", claim=True)

    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(resume, range(8)))
    assert [d.allowed for d in decisions] == [True] * 8
    assert sum(d.claimed for d in decisions) == 1
    assert len({d.event_seq for d in decisions}) == 1
    assert cp.get_ticket(pending.ticket_id).status == "consumed"
    assert cp.get_session(sid).actions_used == 1


def test_a_claimant_that_stopped_is_reported_and_can_be_resolved(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = _session(cp)
    claimant = cp.govern(sid, "read_ticket", idempotency_key="k", claim=True)
    assert claimant.claimed
    # The claimant's process is gone before it recorded anything; a retry finds the claim.
    retry = cp.govern(sid, "read_ticket", idempotency_key="k", claim=True)
    with pytest.raises(ActionInProgressError) as caught:
        cp.wait_for_outcome(retry, timeout=0)
    assert caught.value.decision == retry
    assert "outcome is unknown" in str(caught.value)
    # Someone who checked the world records what happened; every waiter then gets it.
    cp.record_outcome(retry, "failed", result={"error": "never reached the provider"})
    assert cp.wait_for_outcome(retry, timeout=0).outcome == "failed"


async def test_async_claims(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    session = await acp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=5, max_actions=5)
    first = await acp.govern(session.id, "read_ticket", idempotency_key="a", claim=True)
    second = await acp.govern(session.id, "read_ticket", idempotency_key="a", claim=True)
    assert (first.claimed, second.claimed) == (True, False)
    with pytest.raises(ActionInProgressError):
        await acp.wait_for_outcome(second, timeout=0.05)
    await acp.record_outcome(first, "succeeded")
    assert (await acp.wait_for_outcome(second, timeout=1)).outcome == "succeeded"
