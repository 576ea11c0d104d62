"""A decision in a session whose last event this process wrote is built before its charge,
and the charge moves the chain head to it, only if no other writer came between."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT
from tests.statements import statements_sent
from tests.test_concurrency import all_events


def _statements(cp: ControlPlane, call: Any) -> list[str]:
    return [statement.split()[0].upper() for statement in statements_sent(cp, call)]


def _consistent(cp: ControlPlane, sid: Any) -> None:
    events = all_events(cp, sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    allowed = [e for e in events if e.kind == "decision" and e.outcome == "allowed"]
    session = cp.get_session(sid)
    assert session.actions_used == len(allowed)
    assert session.cost_used == sum(
        (Decimal(str(e.payload.get("settled", e.cost))) for e in events if e.kind == "outcome"),
        Decimal(0),
    ) + sum((e.cost or Decimal(0) for e in allowed), Decimal(0))
    assert cp.verify_audit(sid).ok


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "read-back"])
def test_an_opening_starts_its_chain_without_moving_the_head_afterwards(
    control_plane: ControlPlane, returning: bool
) -> None:
    """The session row goes in with its chain head already on the opening event: no UPDATE
    of the head. It comes back from its INSERT where the database has RETURNING (every
    test server: MariaDB from 10.5), else it is read back (MySQL)."""
    cp = control_plane
    assert cp._runtime.capabilities.insert_returning
    if not returning:
        capabilities = replace(cp._runtime.capabilities, insert_returning=False)
        cp._runtime = replace(cp._runtime, capabilities=capabilities)
    policy = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="1", max_actions=1)
    opened: list[Any] = []
    sent = _statements(
        cp,
        lambda: opened.append(
            cp.open_session(agent_id="a", policy=policy.policy_id, max_cost="2.5", max_actions=3)
        ),
    )
    # The kill check (the "all" row, then the kills that cover the agent), the session, its
    # opening event.
    inserting = ["INSERT"] if returning else ["INSERT", "SELECT"]
    assert sent == ["SELECT", "SELECT", *inserting, "INSERT"]
    session = opened[0]
    assert session == cp.get_session(session.id)
    assert (session.max_cost, session.max_actions, session.status) == (Decimal("2.5"), 3, "created")
    assert cp.verify_audit(session.id).ok
    assert cp.govern(session.id, "work").allowed
    assert cp.verify_audit(session.id).ok


async def test_an_async_opening_knows_its_server_too(
    async_control_plane: AsyncControlPlane,
) -> None:
    """AsyncControlPlane.open asks the dialect again after connecting, as ControlPlane.open
    does: on MariaDB the dialect learns only then that the server has RETURNING."""
    cp = async_control_plane
    assert cp._runtime.capabilities.insert_returning
    policy = await cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="1", max_actions=1)
    session = await cp.open_session(
        agent_id="a", policy=policy.policy_id, max_cost="2.5", max_actions=3
    )
    assert session == await cp.get_session(session.id)
    assert (await cp.verify_audit(session.id)).ok


def test_the_charge_places_the_event_when_this_process_wrote_the_last_one(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="10", max_actions=100).id
    cp.govern(sid, "work")  # created -> active
    cp._runtime.memory.forget_head(sid)  # as after another writer: the head must be read
    unplaced = _statements(cp, lambda: cp.govern(sid, "work", idempotency_key="one"))
    placed = _statements(cp, lambda: cp.govern(sid, "work", idempotency_key="two"))
    # Unplaced, the head moves in a statement of its own (SQLite, MariaDB) or in a part of
    # the event's statement (PostgreSQL); placed, the charge moves it. On PostgreSQL the
    # placed charge, the event and the idempotency record are one statement.
    if database.dialect == "postgresql":
        assert unplaced == ["UPDATE", "WITH"]
        assert placed == ["WITH"]
    else:
        assert len(placed) == len(unplaced) - 1
        assert placed.count("UPDATE") == 1
    assert cp.verify_audit(sid).ok


def test_writers_that_interleave_keep_one_chain(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    one, other = two_control_planes
    sid = one.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="100", max_actions=100).id
    for round_ in range(6):
        decision = one.govern(sid, "work", cost="0.5")
        one.govern(sid, "work", cost="0.25")  # placed by the charge: one wrote the last event
        other.govern(sid, "work", cost="1")  # other's head is stale: it must not be used
        other.record_outcome(decision, "succeeded", actual_cost="0.4")
        one.emit(sid, "app.note", {"round": round_})
        one.govern(sid, "work")  # one's head is stale again
    _consistent(one, sid)
    assert one.get_session(sid).actions_used == 24


def test_a_remembered_head_the_database_does_not_have_is_never_used(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="10", max_actions=100).id
    cp.govern(sid, "work", idempotency_key="k")
    known = cp._runtime.memory.head(sid)
    assert known is not None
    next_seq, head = known.next_seq, known.hash
    # What a transaction that rolled back after writing its event would leave behind: the
    # right seq with a hash that never committed, or a seq that is not the next one.
    for remembered in ((next_seq, "f" * 64), (next_seq + 1, head), (next_seq - 1, head)):
        cp._runtime.memory.remember_head(sid, *remembered, known.counters)
        assert cp.govern(sid, "work").allowed
    # A retry is rolled back by the key's unique constraint after writing its event.
    assert cp.govern(sid, "work", idempotency_key="k").event_seq == 2
    assert cp.govern(sid, "work").allowed
    _consistent(cp, sid)
    decisions = [e.seq for e in all_events(cp, sid) if e.kind == "decision"]
    assert decisions == [2, 3, 4, 5, 6]


def test_a_killed_or_spent_session_is_refused_on_the_placed_path(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="10", max_actions=2).id
    assert cp.govern(sid, "work").allowed
    assert cp.govern(sid, "work").allowed
    spent = cp.govern(sid, "work")
    assert not spent.allowed
    other = cp.open_session(agent_id="b", policy=SUPPORT_BOT, max_cost="10", max_actions=9).id
    assert cp.govern(other, "work").allowed
    cp.kill_session(other, reason="test")
    assert not cp.govern(other, "work").allowed
    _consistent(cp, sid)
    _consistent(cp, other)
