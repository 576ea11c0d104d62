"""Sequence rules, steer retry limits, agent capabilities and delegation."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent_control_plane import ControlPlane
from agent_control_plane.errors import InvalidInputError
from agent_control_plane.models import Decision, Outcome
from agent_control_plane.operations.agents import AgentNotFoundError

SEQUENCES: dict[str, Any] = {
    "name": "sequences",
    "default": "allow",
    "tiers": {"steer": {"close_account": "Ask for written confirmation."}},
    "steer_retries": 2,
    "sequences": [
        {"deny": "send_email", "after": "read_inbox"},
        {"limit": "delete_*", "max": 3, "per": "1h"},
    ],
}


def _session(cp: ControlPlane, policy: dict[str, Any], agent_id: str = "agent") -> uuid.UUID:
    return cp.open_session(agent_id=agent_id, policy=policy, max_cost=100, max_actions=1000).id


def test_deny_after_and_limit_per_period(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp, SEQUENCES)
    assert cp.govern(sid, "send_email").allowed  # nothing read yet
    assert cp.govern(sid, "read_inbox").allowed
    after = cp.govern(sid, "send_email")
    assert (after.outcome, after.reason) == (Outcome.DENIED, "sequence.after:read_inbox")
    assert [cp.govern(sid, f"delete_{n}").allowed for n in range(4)] == [True, True, True, False]
    assert cp.govern(sid, "delete_x").reason == "sequence.limit:delete_*"
    other = _session(cp, SEQUENCES)  # per session
    assert cp.govern(other, "delete_1").allowed
    assert cp.govern(other, "send_email").allowed


def test_steer_retries_are_limited(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp, SEQUENCES)
    first, second, third = (cp.govern(sid, "close_account") for _ in range(3))
    assert (first.outcome, second.outcome) == (Outcome.STEER, Outcome.STEER)
    assert first.guidance == "Ask for written confirmation."
    assert (third.outcome, third.reason) == (Outcome.DENIED, "steer.retry_limit:close_account")


def test_a_limit_holds_exactly_under_concurrency(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp, SEQUENCES)
    barrier = threading.Barrier(8)

    def attempt(index: int) -> Decision:
        barrier.wait()
        return cp.govern(sid, f"delete_{index}")

    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(attempt, range(8)))
    assert sum(d.allowed for d in decisions) == 3
    assert {d.reason for d in decisions if not d.allowed} == {"sequence.limit:delete_*"}
    assert cp.get_session(sid).actions_used == 3


def test_capabilities_are_required_per_action(control_plane: ControlPlane) -> None:
    cp = control_plane
    policy = {"name": "caps", "default": "allow", "capabilities": {"issue_refund": "payments"}}
    unregistered = _session(cp, policy, agent_id="ghost")
    assert cp.govern(unregistered, "issue_refund").reason == "agent.unregistered"
    cp.register_agent("clerk", capabilities=["email"], tags=["support"])
    sid = _session(cp, policy, agent_id="clerk")
    assert cp.govern(sid, "issue_refund").reason == "capability.missing:payments"
    assert cp.govern(sid, "read").allowed  # no capability needed
    updated = cp.register_agent("clerk", capabilities=["email", "payments"], tags=["support"])
    assert updated.capabilities == ["email", "payments"]
    assert cp.govern(sid, "issue_refund").allowed
    cp.register_agent("clerk", capabilities=["payments"], status="disabled")
    assert cp.govern(sid, "issue_refund").reason == "agent.disabled"
    assert cp.get_agent("clerk").created_at == updated.created_at


def test_concurrent_registration_is_one_atomic_upsert(control_plane: ControlPlane) -> None:
    barrier = threading.Barrier(8)

    def register(index: int) -> None:
        barrier.wait()
        control_plane.register_agent("racer", capabilities=[f"c{index}"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(register, range(8)))
    assert len(control_plane.get_agent("racer").capabilities) == 1


def test_delegation_checks_agents_capability_and_depth(control_plane: ControlPlane) -> None:
    cp = control_plane
    for name, caps in (("planner", []), ("researcher", ["search"]), ("writer", ["write"])):
        cp.register_agent(name, capabilities=caps)
    sid = _session(cp, {"name": "p", "default": "allow"}, agent_id="planner")
    first = cp.delegate(
        "planner", "researcher", "find sources", capability="search", session_id=sid
    )
    assert (first.status, first.depth, first.reason) == ("active", 1, None)
    missing = cp.delegate(
        "planner", "writer", "search the web", capability="search", session_id=sid
    )
    assert (missing.allowed, missing.reason) == (False, "capability.missing:search")
    second = cp.delegate(
        "researcher", "writer", "draft", capability="write", parent_id=first.id, max_depth=2
    )
    assert (second.allowed, second.depth) == (True, 2)
    too_deep = cp.delegate("writer", "researcher", "again", parent_id=second.id, max_depth=2)
    assert (too_deep.allowed, too_deep.reason, too_deep.depth) == (
        False,
        "delegation.depth_limit",
        3,
    )
    with pytest.raises(InvalidInputError, match="was handed to"):
        cp.delegate("planner", "writer", "x", parent_id=second.id)
    with pytest.raises(AgentNotFoundError):
        cp.delegate("planner", "nobody", "x")
    kinds = [(e.kind, e.reason) for e in cp.events(sid) if e.kind.startswith("delegation")]
    assert kinds == [
        ("delegation.created", None),
        ("delegation.denied", "capability.missing:search"),
    ]
    assert cp.verify_audit(sid).ok
