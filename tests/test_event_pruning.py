"""Event retention: terminal sessions lose old events, the audit still verifies from an
anchor, and tampering (or pruning without an anchor) is still detected."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from agent_control_plane import ControlPlane
from tests.maintenance_helpers import open_session

GAP = 0.3


def _session_with_old_and_new_events(cp: ControlPlane) -> tuple[uuid.UUID, datetime]:
    """Opened + 3 decisions, a pause; then 2 decisions and completion. Returns the time
    between the two groups (events 1..4 are older than it, 5..7 newer)."""
    sid = open_session(cp)
    for _ in range(3):
        cp.govern(sid, "work", cost="0")
    return sid, datetime.now(UTC)


def _finish(cp: ControlPlane, sid: uuid.UUID) -> None:
    cp.govern(sid, "work", cost="0")
    cp.govern(sid, "work", cost="0")
    cp.complete_session(sid)


def _retention_since(mark: datetime) -> timedelta:
    return datetime.now(UTC) - mark


def _prune(cp: ControlPlane, mark: datetime, **options: Any) -> Any:
    return cp.run_maintenance(event_retention=_retention_since(mark), **options)


def _anchor(cp: ControlPlane, sid: uuid.UUID) -> tuple[int | None, str | None]:
    s = cp.tables.sessions.c
    with cp.engine.connect() as connection:
        row = connection.execute(select(s.pruned_seq, s.pruned_hash).where(s.id == sid)).one()
    return row.pruned_seq, row.pruned_hash


def _change(cp: ControlPlane, statement: Any) -> None:
    with cp.engine.begin() as connection:
        connection.execute(statement)


def _problems(cp: ControlPlane, sid: uuid.UUID) -> list[tuple[int, str]]:
    return [(p.seq, p.problem) for p in cp.verify_audit(sid).problems]


def test_old_events_of_terminal_sessions_are_pruned_behind_an_anchor(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    done, _ = _session_with_old_and_new_events(cp)
    still_open, _ = _session_with_old_and_new_events(cp)
    time.sleep(GAP)
    mark = datetime.now(UTC)
    time.sleep(GAP)
    _finish(cp, done)
    fourth_hash = cp.events(done)[3].hash
    report = _prune(cp, mark, batch_size=1)
    assert (report.events_pruned, report.sessions_pruned, report.sessions_not_pruned) == (4, 1, 0)
    assert [e.seq for e in cp.events(done)] == [5, 6, 7]
    assert _anchor(cp, done) == (4, fourth_hash)
    assert [e.seq for e in cp.events(still_open)] == [1, 2, 3, 4]
    assert _prune(cp, mark).events_pruned == 0
    audit = cp.verify_audit()
    assert audit.ok, audit.problems
    assert audit.events_checked == 3 + 4
    # Once everything is past retention, the whole chain goes; the anchor is the head.
    everything = _prune(cp, datetime.now(UTC))
    assert (everything.events_pruned, everything.sessions_pruned) == (3, 1)
    assert cp.events(done) == []
    assert _anchor(cp, done)[0] == 7
    assert cp.verify_audit(done).ok


def test_tampering_after_pruning_is_still_detected(control_plane: ControlPlane) -> None:
    cp = control_plane
    sessions = [_session_with_old_and_new_events(cp)[0] for _ in range(4)]
    time.sleep(GAP)
    mark = datetime.now(UTC)
    time.sleep(GAP)
    for sid in sessions:
        _finish(cp, sid)
    assert _prune(cp, mark).sessions_pruned == 4
    assert cp.verify_audit().ok
    edited, first_gone, anchor_moved, old_one_back = sessions
    events = cp.tables.events
    e = events.c
    _change(cp, update(events).where(e.session_id == edited, e.seq == 6).values(reason="x"))
    assert _problems(cp, edited) == [(6, "edited")]
    _change(cp, delete(events).where(e.session_id == first_gone, e.seq == 5))
    assert _problems(cp, first_gone) == [(5, "missing"), (6, "broken_link")]
    s = cp.tables.sessions.c
    _change(cp, update(cp.tables.sessions).where(s.id == anchor_moved).values(pruned_hash="f" * 64))
    # The marker no longer matches its anchor row, and the chain does not follow it.
    assert _problems(cp, anchor_moved) == [(4, "unbacked_prune"), (5, "broken_link")]
    # Re-inserting a pruned event is flagged too.
    resurrected = cp.events(old_one_back)[0]
    _change(
        cp,
        events.insert().values(
            session_id=old_one_back,
            seq=2,
            kind=resurrected.kind,
            created_at=resurrected.created_at,
            prev_hash=resurrected.prev_hash,
            hash=resurrected.hash,
        ),
    )
    assert _problems(cp, old_one_back) == [(2, "unexpected")]


def test_pruning_without_an_anchor_is_detected_as_deletion(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid, _ = _session_with_old_and_new_events(cp)
    _finish(cp, sid)
    e = cp.tables.events.c
    _change(cp, delete(cp.tables.events).where(e.session_id == sid, e.seq <= 4))
    assert _problems(cp, sid) == [(1, "missing"), (5, "broken_link")]
    assert not cp.verify_audit().ok


def test_a_chain_that_does_not_verify_is_never_pruned(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid, _ = _session_with_old_and_new_events(cp)
    time.sleep(GAP)
    mark = datetime.now(UTC)
    time.sleep(GAP)
    _finish(cp, sid)
    e = cp.tables.events.c
    _change(cp, update(cp.tables.events).where(e.session_id == sid, e.seq == 2).values(reason="x"))
    report = _prune(cp, mark)
    assert (report.events_pruned, report.sessions_not_pruned, report.ok) == (0, 1, False)
    assert len(cp.events(sid)) == 7
    assert _anchor(cp, sid) == (None, None)
    assert _problems(cp, sid) == [(2, "edited")]
