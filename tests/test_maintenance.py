"""run_maintenance: each step does its job, once, on every database."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import InvalidInputError
from agent_control_plane.models import MaintenanceReport
from tests.databases import TestDatabase
from tests.maintenance_helpers import (
    POLICY,
    TINY,
    event_kinds,
    hold_expiring_tokens,
    open_session,
    request_approvals,
    reservation_statuses,
    wait_past,
    webhook_server,
    window_counters,
)


def test_a_run_with_nothing_to_do_changes_nothing(control_plane: ControlPlane) -> None:
    report = control_plane.run_maintenance(
        escalate_after="1h", heartbeat_timeout="1h", event_retention="30d"
    )
    assert report == MaintenanceReport()
    assert report.ok


def test_overdue_tickets_expire_once_with_one_event(control_plane: ControlPlane) -> None:
    cp = control_plane
    quick = {**POLICY, "name": "quick", "approval_timeout": "1ms"}
    sid = open_session(cp, quick)
    tickets = request_approvals(cp, sid, 3)
    wait_past(TINY)
    assert cp.run_maintenance(batch_size=2).tickets_expired == 3
    assert cp.run_maintenance().tickets_expired == 0
    assert {cp.get_ticket(t).status for t in tickets} == {"expired"}
    assert event_kinds(cp, sid).count("approval.expired") == 3
    assert cp.verify_audit(sid).ok


def test_pending_tickets_escalate_once_after_the_delay(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = open_session(cp)
    old = request_approvals(cp, sid, 3)
    time.sleep(0.3)
    fresh = cp.govern(sid, "issue_refund", args={"n": "fresh"}, cost="0").ticket_id
    assert fresh is not None
    decided = old.pop()
    cp.approve(decided, "alice")
    report = cp.run_maintenance(escalate_after=timedelta(seconds=0.2), batch_size=1)
    assert report.tickets_escalated == 2
    assert cp.run_maintenance(escalate_after="200ms").tickets_escalated == 0
    assert all(cp.get_ticket(t).escalated_at is not None for t in old)
    assert cp.get_ticket(fresh).escalated_at is None
    assert cp.get_ticket(decided).escalated_at is None
    escalations = [e for e in cp.events(sid) if e.kind == "approval.escalated"]
    assert sorted(e.payload["ticket_id"] for e in escalations) == sorted(map(str, old))
    assert all(e.payload["notified"] is False for e in escalations)
    assert cp.verify_audit(sid).ok
    # An escalated ticket is still pending: the person can still decide it.
    assert cp.approve(old[0], "alice").status == "approved"


def test_expired_holds_are_released_once_and_windows_are_exact(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    hold_expiring_tokens(cp, 5)
    assert window_counters(cp)[1] == 500
    assert cp.run_maintenance(batch_size=2).holds_released == 5
    assert cp.run_maintenance().holds_released == 0
    assert window_counters(cp)[:2] == (0, 0)
    assert window_counters(cp)[3] == 0
    assert reservation_statuses(cp) == {"expired": 5}


@pytest.mark.parametrize("on_stale", ["pause", "abort"])
def test_silent_active_sessions_are_recovered_once(
    control_plane: ControlPlane, on_stale: str
) -> None:
    cp = control_plane
    silent = open_session(cp)
    cp.govern(silent, "work", cost="0")  # active, never heart-beaten
    stopped_beating = open_session(cp)
    cp.govern(stopped_beating, "work", cost="0")
    cp.heartbeat(stopped_beating)
    alive = open_session(cp)
    cp.govern(alive, "work", cost="0")
    paused_by_a_person = open_session(cp)
    cp.govern(paused_by_a_person, "work", cost="0")
    cp.pause_session(paused_by_a_person)
    never_started = open_session(cp)
    time.sleep(0.4)
    cp.heartbeat(alive)
    report = cp.run_maintenance(heartbeat_timeout="300ms", on_stale=on_stale, batch_size=1)
    again = cp.run_maintenance(heartbeat_timeout="300ms", on_stale=on_stale)
    status = {"pause": "paused", "abort": "aborted"}[on_stale]
    kind = {"pause": "session.paused", "abort": "session.killed"}[on_stale]
    assert (report.sessions_paused, report.sessions_aborted) == (
        (2, 0) if on_stale == "pause" else (0, 2)
    )
    assert (again.sessions_paused, again.sessions_aborted) == (0, 0)
    for sid in (silent, stopped_beating):
        session = cp.get_session(sid)
        assert session.status == status
        recovered = [e for e in cp.events(sid) if e.reason == "heartbeat.timeout"]
        assert [e.kind for e in recovered] == [kind]
        assert recovered[0].payload["status"] == status
        assert (session.ended_at is not None) is (on_stale == "abort")
    assert cp.get_session(alive).status == "active"
    assert cp.get_session(paused_by_a_person).status == "paused"
    assert cp.get_session(never_started).status == "created"
    assert cp.verify_audit().ok
    if on_stale == "pause":
        assert cp.resume_session(silent).status == "active"
        assert cp.govern(silent, "work", cost="0").allowed


def test_idempotency_records_past_retention_are_pruned(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    for n in range(3):
        cp.open_session(
            agent_id="agent", policy=POLICY, max_cost=1, max_actions=1, idempotency_key=f"k{n}"
        )
    assert cp.run_maintenance().idempotency_keys_pruned == 0  # 7 days by default
    with ControlPlane.open(
        database.url_string, migrate="verify", idempotency_retention=timedelta(microseconds=1)
    ) as worker:
        assert worker.run_maintenance(batch_size=2).idempotency_keys_pruned == 3
        assert worker.run_maintenance().idempotency_keys_pruned == 0


def test_bad_settings_are_refused_before_anything_runs(control_plane: ControlPlane) -> None:
    cp = control_plane
    quick = {**POLICY, "name": "quick", "approval_timeout": "1ms"}
    ticket = request_approvals(cp, open_session(cp, quick), 1)[0]
    wait_past(TINY)
    bad: list[dict[str, object]] = [
        {"escalate_after": "soon"},
        {"heartbeat_timeout": -5},
        {"on_stale": "delete"},
        {"event_retention": "0s"},
        {"batch_size": 0},
        {"batch_size": True},
        {"escalate_after": "1h", "webhook_url": "ftp://example.com/x"},
        {"webhook_url": "http://127.0.0.1:9/x"},
        {"escalate_after": "1h", "webhook_url": "http://127.0.0.1:9/", "webhook_timeout": 0},
    ]
    for options in bad:
        with pytest.raises(InvalidInputError):
            cp.run_maintenance(**options)  # type: ignore[arg-type]
    assert cp.get_ticket(ticket).status == "pending"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_escalation_webhook_is_posted_and_a_failure_is_retried_next_run(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    sid = open_session(cp)
    tickets = request_approvals(cp, sid, 2)
    wait_past(TINY)
    unreachable = f"http://127.0.0.1:{_closed_port()}/hook"
    down = cp.run_maintenance(escalate_after=TINY, webhook_url=unreachable, webhook_timeout=2)
    assert (down.tickets_escalated, down.webhook_failures, down.ok) == (0, 1, False)
    with webhook_server(status=500) as hook:
        failing = cp.run_maintenance(escalate_after=TINY, webhook_url=hook.url)
        assert (failing.tickets_escalated, failing.webhook_failures) == (0, 1)
        assert "approval.escalated" not in event_kinds(cp, sid)
        assert all(cp.get_ticket(t).escalated_at is None for t in tickets)
        hook.status = 200
        delivered = cp.run_maintenance(escalate_after=TINY, webhook_url=hook.url)
        assert (delivered.tickets_escalated, delivered.webhook_failures) == (2, 0)
        assert cp.run_maintenance(escalate_after=TINY, webhook_url=hook.url).tickets_escalated == 0
    assert sorted(body["ticket_id"] for body in hook.bodies) == sorted(map(str, tickets))
    body = hook.bodies[0]
    assert body["type"] == "approval.escalated"
    assert body["session_id"] == str(sid)
    assert body["agent_id"] == "agent"
    assert body["action"] == "issue_refund"
    assert event_kinds(cp, sid).count("approval.escalated") == 2
    assert cp.verify_audit(sid).ok


async def test_async_run_posts_the_webhook_without_blocking_the_loop(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    session = await acp.open_session(agent_id="agent", policy=POLICY, max_cost=1, max_actions=9)
    decision = await acp.govern(session.id, "issue_refund", args={"n": 1}, cost="0")
    assert decision.ticket_id is not None
    wait_past(TINY)
    with webhook_server() as hook:
        report = await acp.run_maintenance(escalate_after=TINY, webhook_url=hook.url)
    assert report.tickets_escalated == 1
    assert [body["ticket_id"] for body in hook.bodies] == [str(decision.ticket_id)]
    assert (await acp.get_ticket(decision.ticket_id)).escalated_at is not None
