"""Tampering with stored events is detected and named, on every database and in the CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import delete, update
from typer.testing import CliRunner

from agent_control_plane import ControlPlane
from agent_control_plane.cli import app
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT

runner = CliRunner()


def _session_with_events(cp: ControlPlane, count: int = 6) -> uuid.UUID:
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=10, max_actions=100).id
    for n in range(count - 1):
        cp.govern(sid, "work", cost="0.01", args={"n": n, "f": 0.1 * n, "s": "é"})
    return sid


def _problems(cp: ControlPlane, sid: uuid.UUID) -> set[tuple[int, str]]:
    return {(p.seq, p.problem) for p in cp.verify_audit(sid).problems}


def test_intact_trails_verify_with_any_payload(control_plane: ControlPlane) -> None:
    sid = _session_with_events(control_plane)
    control_plane.emit(
        sid, "app.note", {"big": 2**60, "neg": -1.25e-7, "u": "日本", "l": [None, True]}
    )
    report = control_plane.verify_audit()
    assert (report.ok, report.events_checked) == (True, 7)


def test_edited_deleted_inserted_and_reordered_rows_are_named(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    events = cp.tables.events
    edited, deleted, reordered, tail = (_session_with_events(cp) for _ in range(4))
    untouched = _session_with_events(cp)
    with cp.engine.begin() as connection:
        connection.execute(
            update(events)
            .where(events.c.session_id == edited, events.c.seq == 3)
            .values(reason="tier.auto_approve:innocent")
        )
        connection.execute(delete(events).where(events.c.session_id == deleted, events.c.seq == 4))
        connection.execute(
            update(events)
            .where(events.c.session_id == reordered, events.c.seq == 2)
            .values(seq=100)
        )
        connection.execute(
            update(events).where(events.c.session_id == reordered, events.c.seq == 3).values(seq=2)
        )
        connection.execute(
            update(events)
            .where(events.c.session_id == reordered, events.c.seq == 100)
            .values(seq=3)
        )
        connection.execute(delete(events).where(events.c.session_id == tail, events.c.seq == 6))
    assert _problems(cp, edited) == {(3, "edited")}
    assert _problems(cp, deleted) == {(4, "missing"), (5, "broken_link")}
    assert ("2", "edited") in {(str(s), p) for s, p in _problems(cp, reordered)}
    assert (3, "edited") in _problems(cp, reordered)
    assert _problems(cp, tail) == {(6, "missing")}
    assert _problems(cp, untouched) == set()
    report = cp.verify_audit()
    assert not report.ok
    assert {p.session_id for p in report.problems} == {edited, deleted, reordered, tail}


def test_an_inserted_row_is_named(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session_with_events(cp, 3)
    other = _session_with_events(cp, 3)
    forged = cp.events(other)[-1]
    with cp.engine.begin() as connection:
        connection.execute(
            cp.tables.events.insert(),
            {
                "session_id": sid,
                "seq": 4,
                "kind": forged.kind,
                "action": forged.action,
                "outcome": forged.outcome,
                "reason": forged.reason,
                "cost": forged.cost,
                "payload": forged.payload,
                "created_at": forged.created_at,
                "prev_hash": forged.prev_hash,
                "hash": forged.hash,
            },
        )
    assert _problems(cp, sid) >= {(4, "unexpected")}


def test_acp_audit_verify_exit_codes(database: TestDatabase, tmp_path: Path) -> None:
    with ControlPlane.open(database.url_string) as cp:
        sid = _session_with_events(cp, 3)
    url = ["--url", database.url_string]
    result = runner.invoke(app, ["audit", "verify", *url])
    assert (result.exit_code, "audit trail intact" in result.output) == (0, True)
    with ControlPlane.open(database.url_string) as cp, cp.engine.begin() as connection:
        events = cp.tables.events
        connection.execute(
            update(events).where(events.c.session_id == sid, events.c.seq == 2).values(action="x")
        )
    result = runner.invoke(app, ["audit", "verify", "--json", *url])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False
    assert data["problems"][0] == {
        "session_id": str(sid),
        "seq": 2,
        "problem": "edited",
        "detail": "content does not match its hash",
    }
    unknown = uuid.uuid4()
    result = runner.invoke(app, ["audit", "verify", "--session", str(unknown), *url])
    # A session that is not there has no trail to call intact: not found, exit 1.
    assert (result.exit_code, f"no session {unknown}" in result.output) == (1, True)
