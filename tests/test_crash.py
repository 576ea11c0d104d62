"""A process SIGKILLed in the middle of govern leaves the whole decision or none of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from agent_control_plane import ControlPlane
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT
from tests.test_concurrency import all_events

ROOT = Path(__file__).resolve().parents[1]


def _consistent(cp: ControlPlane, sid: uuid.UUID) -> int:
    """Charges and events agree exactly; return how many actions were allowed."""
    events = all_events(cp, sid)
    allowed = [e for e in events if e.kind == "decision" and e.outcome == "allowed"]
    session = cp.get_session(sid)
    assert session.actions_used == len(allowed)
    assert session.cost_used == sum((e.cost or Decimal(0) for e in allowed), Decimal(0))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert cp.verify_audit(sid).ok
    return len(allowed)


def _child(
    database: TestDatabase, sid: uuid.UUID, marker: Path | None, pause_after: int, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash_child",
                database.url_string,
                str(sid),
                str(marker or ""),
                str(pause_after),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=output,
        )


@pytest.mark.slow
def test_sigkill_between_charge_and_event(
    control_plane: ControlPlane, database: TestDatabase, tmp_path: Path
) -> None:
    sid = control_plane.open_session(
        agent_id="crashy", policy=SUPPORT_BOT, max_cost=100, max_actions=10_000
    ).id
    marker = tmp_path / "charged"
    log = tmp_path / "child.log"
    child = _child(database, sid, marker, 5, log)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    # The 5th charge happened inside a transaction that never committed.
    assert _consistent(control_plane, sid) == 4
    assert control_plane.govern(sid, "work", cost="0.001").allowed


@pytest.mark.slow
def test_sigkill_at_random_moments(
    control_plane: ControlPlane, database: TestDatabase, tmp_path: Path
) -> None:
    sid = control_plane.open_session(
        agent_id="crashy", policy=SUPPORT_BOT, max_cost=100, max_actions=10_000
    ).id
    total = 0
    for delay in (0.0, 0.013, 0.029):
        child = _child(database, sid, None, 0, tmp_path / "child.log")
        deadline = time.monotonic() + 60
        # Kill only once the child is busy governing, at a moment that varies.
        while control_plane.get_session(sid).actions_used <= total:
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        allowed = _consistent(control_plane, sid)
        assert allowed > total
        total = allowed
