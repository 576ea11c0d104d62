"""govern(), sessions, policies, kill switch, events and idempotency on every database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from agent_control_plane import ConfigurationError, ControlPlane
from agent_control_plane.errors import (
    IdempotencyConflictError,
    InvalidInputError,
    InvalidTransitionError,
    PolicyError,
    PolicyNotFoundError,
    SessionNotFoundError,
    SessionTerminatedError,
)
from agent_control_plane.models import Outcome
from tests.databases import TestDatabase
from tests.policies import DRY_RUN, SUPPORT_BOT


def open_session(cp: ControlPlane, **overrides: object) -> uuid.UUID:
    options: dict[str, object] = {
        "agent_id": "bot-1",
        "tenant": "acme",
        "policy": SUPPORT_BOT,
        "max_cost": "1.00",
        "max_actions": 10,
    }
    options.update(overrides)
    return cp.open_session("support", **options).id  # type: ignore[arg-type]


def counts(cp: ControlPlane) -> tuple[int, int]:
    tables = cp.tables
    with cp.engine.connect() as connection:
        sessions = connection.execute(select(func.count()).select_from(tables.sessions)).scalar()
        events = connection.execute(select(func.count()).select_from(tables.events)).scalar()
    return int(sessions or 0), int(events or 0)


def test_outcomes_reasons_and_budgets(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = open_session(cp, max_actions=3, max_cost="0.25")
    assert cp.get_session(sid).status == "created"
    allowed = cp.govern(sid, "read_ticket", cost="0.10", weight=0.2, score=0.9)
    assert allowed.outcome is Outcome.ALLOWED
    assert str(allowed.outcome) == "allowed"
    assert (allowed.reason, allowed.charged, allowed.event_seq) == (
        "tier.auto_approve:read_ticket",
        True,
        2,
    )
    assert (allowed.remaining_cost, allowed.remaining_actions) == (Decimal("0.15"), 2)
    assert cp.get_session(sid).status == "active"

    steer = cp.govern(sid, "close_account")
    assert (steer.outcome, steer.guidance) == (
        Outcome.STEER,
        SUPPORT_BOT["tiers"]["steer"]["close_account"],
    )
    approval = cp.govern(sid, "issue_refund", cost="0.01")
    assert (approval.outcome, approval.charged) == (Outcome.NEEDS_APPROVAL, False)
    assert approval.ticket_id is not None
    # Nobody is asked to approve what the budget could not pay for anyway.
    unaffordable = cp.govern(sid, "issue_refund", cost="5")
    assert (unaffordable.outcome, unaffordable.reason) == (Outcome.DENIED, "budget.max_cost")
    denied = cp.govern(sid, "drop_database")
    assert (denied.outcome, denied.reason) == (Outcome.DENIED, "tier.blocked:drop_database")
    unknown = cp.govern(sid, "launch_rocket")
    assert (unknown.outcome, unknown.reason) == (Outcome.DENIED, "policy.default_deny")

    over_cost = cp.govern(sid, "work", cost="0.16")
    assert (over_cost.outcome, over_cost.reason) == (Outcome.DENIED, "budget.max_cost")
    assert cp.govern(sid, "work", cost="0.15").allowed
    assert cp.govern(sid, "work", cost="0").allowed
    exhausted = cp.govern(sid, "work", cost="0")
    assert (exhausted.outcome, exhausted.reason) == (Outcome.DENIED, "budget.max_actions")
    session = cp.get_session(sid)
    assert (session.actions_used, session.cost_used) == (3, Decimal("0.25"))
    assert [e.seq for e in cp.events(sid)] == list(range(1, 12))
    assert cp.verify_audit(sid).ok


def test_dry_run_decides_and_records_without_charging(control_plane: ControlPlane) -> None:
    sid = open_session(control_plane, policy=DRY_RUN, max_actions=1)
    first = control_plane.govern(sid, "work", cost="0.5")
    second = control_plane.govern(sid, "work", cost="0.5")
    assert (first.outcome, first.dry_run, first.charged) == (Outcome.ALLOWED, True, False)
    assert (second.outcome, second.reason) == (Outcome.ALLOWED, "tier.unrestricted:work")
    too_much = control_plane.govern(sid, "work", cost="2")
    assert (too_much.outcome, too_much.reason) == (Outcome.DENIED, "budget.max_cost")
    session = control_plane.get_session(sid)
    assert (session.actions_used, session.cost_used) == (0, Decimal(0))
    assert len(control_plane.events(sid)) == 4


def test_record_outcome_settles_the_difference_once(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = open_session(cp)
    decision = cp.govern(sid, "work", cost="0.30")
    event = cp.record_outcome(decision, "succeeded", actual_cost="0.12", result={"rows": 3})
    assert (event.kind, event.outcome, event.cost) == ("outcome", "succeeded", Decimal("0.12"))
    assert event.payload["settled"] == "-0.180000000"
    assert cp.get_session(sid).cost_used == Decimal("0.12")
    again = cp.record_outcome(decision, "succeeded", actual_cost="0.12", result={"rows": 3})
    assert again == event
    assert cp.get_session(sid).cost_used == Decimal("0.12")
    with pytest.raises(IdempotencyConflictError):
        cp.record_outcome(decision, "failed", actual_cost="0")
    failed = cp.govern(sid, "work", cost="0.40")
    cp.record_outcome(failed, "failed", actual_cost=0)
    assert cp.get_session(sid).cost_used == Decimal("0.12")
    kinds = [(e.kind, e.outcome) for e in cp.events(sid)]
    assert kinds[-1] == ("outcome", "failed")
    # A forged decision (inflated estimate, to refund more) is refused.
    honest = cp.govern(sid, "work", cost="0.05")
    with pytest.raises(InvalidInputError, match="does not match"):
        cp.record_outcome(replace(honest, cost=Decimal("0.99")), "succeeded", actual_cost=0)
    assert cp.get_session(sid).cost_used == Decimal("0.17")
    assert cp.verify_audit(sid).ok


def test_lifecycle_is_checked_and_terminal_sessions_never_reopen(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = open_session(cp)
    assert cp.pause_session(sid, reason="lunch").status == "paused"
    paused = cp.govern(sid, "read_ticket")
    assert (paused.outcome, paused.reason) == (Outcome.DENIED, "session.paused")
    with pytest.raises(InvalidTransitionError, match="it is paused"):
        cp.pause_session(sid)
    assert cp.resume_session(sid).status == "active"
    assert cp.complete_session(sid, reason="done").status == "completed"
    with pytest.raises(InvalidTransitionError, match="never reopens"):
        cp.resume_session(sid)
    assert cp.govern(sid, "work").reason == "session.completed"
    with pytest.raises(SessionTerminatedError):
        cp.emit(sid, "app.note", {"x": 1})
    assert cp.kill_session(sid) == 0
    with pytest.raises(SessionNotFoundError):
        cp.pause_session(uuid.uuid4())


def test_expired_sessions_are_refused(control_plane: ControlPlane) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    sid = open_session(control_plane, expires_at=past)
    decision = control_plane.govern(sid, "work")
    assert (decision.outcome, decision.reason) == (Outcome.DENIED, "session.expired")


def test_kill_switch_scopes_and_counts(control_plane: ControlPlane) -> None:
    cp = control_plane
    a1 = open_session(cp, agent_id="a1", tenant="t1")
    a1_paused = open_session(cp, agent_id="a1", tenant="t1")
    cp.pause_session(a1_paused)
    a2 = open_session(cp, agent_id="a2", tenant="t1")
    done = open_session(cp, agent_id="a2", tenant="t1")
    cp.complete_session(done)
    b = open_session(cp, agent_id="b", tenant="t2")
    c = open_session(cp, agent_id="c", tenant="t3")

    assert cp.kill_agent("a1", reason="misbehaving") == 2
    assert cp.kill_agent("a1") == 0
    assert cp.kill_tenant("t1") == 1
    assert cp.kill_session(b, reason="manual") == 1
    assert cp.kill_all(reason="incident") == 1
    for sid in (a1, a1_paused, a2, b, c):
        session = cp.get_session(sid)
        assert (session.status, session.killed) == ("aborted", True)
        assert cp.govern(sid, "work").reason == "session.killed"
        assert cp.heartbeat(sid).killed
    assert cp.get_session(done).status == "completed"
    killed_events = [e for e in cp.events(a1_paused) if e.kind == "session.killed"]
    assert len(killed_events) == 1
    assert killed_events[0].reason == "misbehaving"
    assert killed_events[0].payload == {"status": "aborted", "scope": "agent", "agent_id": "a1"}
    assert cp.verify_audit().ok


def test_kill_has_no_row_limit(control_plane: ControlPlane) -> None:
    sessions = [open_session(control_plane, agent_id="swarm") for _ in range(120)]
    assert control_plane.kill_agent("swarm") == 120
    assert {control_plane.get_session(s).status for s in sessions} == {"aborted"}


def test_idempotent_govern_and_open_session(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = open_session(cp, idempotency_key="open-1")
    assert open_session(cp, idempotency_key="open-1") == sid
    with pytest.raises(IdempotencyConflictError):
        open_session(cp, idempotency_key="open-1", max_actions=11)
    first = cp.govern(sid, "work", cost="0.2", idempotency_key="step-1")
    assert cp.govern(sid, "work", cost="0.2", idempotency_key="step-1") == first
    assert cp.get_session(sid).actions_used == 1
    with pytest.raises(IdempotencyConflictError, match="different request"):
        cp.govern(sid, "work", cost="0.3", idempotency_key="step-1")
    # Keys are scoped per tenant and operation.
    other = open_session(cp, tenant="other", idempotency_key="step-1")
    assert cp.govern(other, "work", idempotency_key="step-1").allowed
    assert cp.prune_idempotency_keys(timedelta(days=1)) == 0
    assert cp.prune_idempotency_keys(timedelta(microseconds=1)) >= 3
    replayed_after_prune = cp.govern(sid, "work", cost="0.2", idempotency_key="step-1")
    assert replayed_after_prune.event_seq != first.event_seq


def test_policies_are_versioned_snapshots(control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = control_plane
    first = cp.apply_policy(SUPPORT_BOT)
    assert (first.name, first.version) == ("support-bot", 1)
    assert cp.apply_policy(dict(SUPPORT_BOT)).id == first.id
    changed = cp.apply_policy({**SUPPORT_BOT, "default": "approve"})
    assert (changed.version, changed.id != first.id) == (2, True)
    path = tmp_path / "policy.yaml"
    path.write_text("name: from-file\ndefault: allow\n")
    from_file = cp.apply_policy(path)
    sid = open_session(cp, policy=str(path))
    assert cp.get_session(sid).policy_id == from_file.id
    by_id = open_session(cp, policy=first.id)
    assert cp.get_session(by_id).policy_id == first.id
    by_text_id = open_session(cp, policy=str(first.id))
    assert cp.get_session(by_text_id).policy_id == first.id
    assert [p.version for p in cp.list_policies("support-bot")] == [1, 2]
    assert cp.get_policy(first.id).document.name == "support-bot"
    with pytest.raises(PolicyNotFoundError):
        open_session(cp, policy=uuid.uuid4())
    with pytest.raises(PolicyError, match="max_weight"):
        cp.apply_policy({"name": "x", "risk": {"max_weight": 5}})


def test_events_emit_and_the_global_feed(control_plane: ControlPlane) -> None:
    cp = control_plane
    one, two = open_session(cp), open_session(cp)
    note = cp.emit(one, "app.note.added", {"text": "hello", "n": 1.5, "nested": {"b": [1, 2]}})
    assert (note.seq, note.kind, note.payload["nested"]) == (2, "app.note.added", {"b": [1, 2]})
    cp.govern(two, "work")
    assert [e.seq for e in cp.events(one, after_seq=1)] == [2]
    seen, cursor = [], None
    while True:
        page = cp.event_feed(cursor=cursor, limit=2)
        if not page.items:
            break
        seen += page.items
        cursor = page.next_cursor
    assert [e.id for e in seen] == sorted(e.id for e in seen)
    assert len(seen) == 4
    assert [e.kind for e in cp.event_feed(kind="app.note.added").items] == ["app.note.added"]
    with pytest.raises(InvalidInputError, match="recorded by ACP only"):
        cp.emit(one, "decision", {})
    assert cp.verify_audit().ok


def test_list_sessions_pages_and_filters(control_plane: ControlPlane) -> None:
    cp = control_plane
    made = [open_session(cp, agent_id=f"a{i % 2}", tenant="t") for i in range(7)]
    cp.pause_session(made[0])
    seen, cursor = [], None
    while True:
        page = cp.list_sessions(limit=3, cursor=cursor)
        seen += [s.id for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == 7
    assert {s.id for s in cp.list_sessions(status="paused").items} == {made[0]}
    assert len(cp.list_sessions(agent_id="a1").items) == 3
    assert cp.list_sessions(tenant="nobody").items == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda cp, sid: cp.govern(sid, "work", cost="-1"), "cost"),
        (lambda cp, sid: cp.govern(sid, "work", cost=0.1), "cost"),
        (lambda cp, sid: cp.govern(sid, "work", cost="0.0000000001"), "cost"),
        (lambda cp, sid: cp.govern(sid, ""), "action"),
        (lambda cp, sid: cp.govern(sid, "x" * 201), "action"),
        (lambda cp, sid: cp.govern(sid, "work", resource="r" * 501), "resource"),
        (lambda cp, sid: cp.govern(sid, "work", weight=1.5), "weight"),
        (lambda cp, sid: cp.govern(sid, "work", args={"x": object()}), "args"),
        (lambda cp, sid: cp.govern(sid, "work", args={"x": "y" * 70000}), "args"),
        (lambda cp, sid: cp.govern(sid, "work", idempotency_key="k" * 256), "idempotency_key"),
        (
            lambda cp, sid: cp.open_session(
                agent_id="a" * 201, policy=SUPPORT_BOT, max_cost=1, max_actions=1
            ),
            "agent_id",
        ),
        (
            lambda cp, sid: cp.open_session(
                agent_id="a", policy=SUPPORT_BOT, max_cost=-1, max_actions=1
            ),
            "max_cost",
        ),
        (
            lambda cp, sid: cp.open_session(
                agent_id="a", policy=SUPPORT_BOT, max_cost=1, max_actions=-1
            ),
            "max_actions",
        ),
        (
            lambda cp, sid: cp.open_session(
                agent_id="a",
                policy=SUPPORT_BOT,
                max_cost=1,
                max_actions=1,
                expires_at=datetime(2030, 1, 1),
            ),
            "expires_at",
        ),
        (lambda cp, sid: cp.emit(sid, "Bad Kind", {}), "kind"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    control_plane: ControlPlane, call: object, field: str
) -> None:
    sid = open_session(control_plane)
    before = counts(control_plane)
    with pytest.raises(InvalidInputError) as raised:
        call(control_plane, sid)  # type: ignore[operator]
    assert raised.value.field == field
    assert counts(control_plane) == before
    assert control_plane.get_session(sid).actions_used == 0


def test_unknown_session_is_an_error_and_writes_nothing(control_plane: ControlPlane) -> None:
    before = counts(control_plane)
    with pytest.raises(SessionNotFoundError):
        control_plane.govern(uuid.uuid4(), "work")
    with pytest.raises(InvalidInputError, match="session_id"):
        control_plane.govern("not-a-uuid", "work")
    with pytest.raises(SessionNotFoundError):
        control_plane.heartbeat(uuid.uuid4())
    assert counts(control_plane) == before


def test_pruning_takes_the_oldest_ids_and_stops_at_the_first_young_record(
    database: TestDatabase,
) -> None:
    """Records are pruned in id order, which is creation order; a batch reads no further
    than the first record still inside the retention period."""
    with ControlPlane.open(database.url_string) as cp:
        sid = open_session(cp)
        for key in ("old-1", "old-2", "young", "old-3"):
            cp.govern(sid, "work", idempotency_key=key)
        keys = cp.tables.idempotency_keys
        hour = timedelta(hours=1)
        with cp.engine.begin() as connection:
            old = select(keys.c.id, keys.c.created_at).where(
                keys.c.key.in_(["old-1", "old-2", "old-3"])
            )
            for row in connection.execute(old).all():
                connection.execute(
                    update(keys).where(keys.c.id == row.id).values(created_at=row.created_at - hour)
                )
        assert cp.prune_idempotency_keys(timedelta(minutes=30)) == 2
        with cp.engine.connect() as connection:
            left = set(connection.execute(select(keys.c.key)).scalars())
        assert left == {"young", "old-3"}
        # A retry of a pruned request is new; one still recorded replays.
        first = cp.govern(sid, "work", idempotency_key="young")
        assert first == cp.govern(sid, "work", idempotency_key="young")


def test_a_policys_limits_cap_the_budgets_a_session_may_be_given(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    capped = {**SUPPORT_BOT, "name": "capped", "limits": {"max_cost": "2.00", "max_actions": 5}}
    before = counts(cp)
    with pytest.raises(InvalidInputError, match=r"max_cost.*above the policy's limit"):
        open_session(cp, policy=capped, max_cost="2.01", max_actions=5)
    with pytest.raises(InvalidInputError, match=r"max_actions.*above the policy's limit"):
        open_session(cp, policy=capped, max_cost="2.00", max_actions=6)
    assert counts(cp) == before  # refused before anything was written
    sid = open_session(cp, policy=capped, max_cost="2.00", max_actions=5)
    assert cp.get_session(sid).max_cost == Decimal("2.00")


def test_idempotency_retention_is_a_setting(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_IDEMPOTENCY_RETENTION", "P1D")
    with ControlPlane.open(database.url_string) as cp:
        sid = open_session(cp)
        cp.govern(sid, "work", idempotency_key="a")
        assert cp.prune_idempotency_keys() == 0  # younger than a day
    with ControlPlane.open(
        database.url_string, idempotency_retention=timedelta(microseconds=1)
    ) as cp:
        assert cp.prune_idempotency_keys() == 1
    with pytest.raises(ConfigurationError, match="positive"):
        ControlPlane.open(database.url_string, idempotency_retention=timedelta(0))


def test_context_is_stored_with_the_decision_but_is_not_part_of_the_request(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = open_session(cp)
    first = cp.govern(
        sid, "work", cost="0.1", idempotency_key="call-1", context={"mcp_request_id": 7}
    )
    again = cp.govern(
        sid, "work", cost="0.1", idempotency_key="call-1", context={"mcp_request_id": 8}
    )
    assert again == first  # a retry with other correlation ids is still the same request
    decisions = [e for e in cp.events(sid) if e.kind == "decision"]
    assert [e.payload.get("context") for e in decisions] == [{"mcp_request_id": 7}]
    plain = cp.govern(sid, "work")
    assert "context" not in cp.events(sid)[-1].payload
    assert plain.allowed
    with pytest.raises(InvalidInputError, match="context"):
        cp.govern(sid, "work", context=["not", "a", "dict"])  # type: ignore[arg-type]
