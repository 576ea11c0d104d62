"""Many maintenance workers at once (threads everywhere, processes on PostgreSQL) never
process a ticket, a hold or a session twice, and together leave nothing undone."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import pytest

from agent_control_plane import ControlPlane
from agent_control_plane.models import MaintenanceReport
from tests.databases import TestDatabase
from tests.maintenance_helpers import (
    POLICY,
    hold_expiring_tokens,
    open_session,
    request_approvals,
    reservation_statuses,
    window_counters,
)
from tests.test_concurrency import all_events

WORKERS = 4
SETTINGS: dict[str, Any] = {
    "escalate_after": "200ms",
    "heartbeat_timeout": "200ms",
    "event_retention": "200ms",
    "batch_size": 3,
}


@dataclass
class Backlog:
    escalating: list[uuid.UUID]
    expiring: list[uuid.UUID]
    active: list[uuid.UUID]
    finished: list[uuid.UUID]
    finished_events: int
    holds: int


def _backlog(cp: ControlPlane) -> Backlog:
    quick = {**POLICY, "name": "quick", "approval_timeout": "100ms"}
    escalating = [t for _ in range(4) for t in request_approvals(cp, open_session(cp), 5)]
    expiring = [t for _ in range(2) for t in request_approvals(cp, open_session(cp, quick), 4)]
    for _ in range(6):
        cp.govern(open_session(cp), "work", cost="0")
    finished = []
    for _ in range(3):
        sid = open_session(cp)
        cp.govern(sid, "work", cost="0")
        cp.complete_session(sid)
        finished.append(sid)
    hold_expiring_tokens(cp, 20)
    time.sleep(0.3)
    active = [s.id for s in cp.list_sessions(status="active", limit=1000).items]
    assert len(active) >= 6
    return Backlog(escalating, expiring, active, finished, 3 * len(finished), 20)


def _total(reports: list[MaintenanceReport]) -> dict[str, int]:
    return {f.name: sum(getattr(r, f.name) for r in reports) for f in fields(MaintenanceReport)}


def _assert_each_done_once(
    cp: ControlPlane, backlog: Backlog, reports: list[MaintenanceReport]
) -> None:
    # A row another worker held is skipped, not waited for: one more run finishes it.
    reports = [*reports, cp.run_maintenance(**SETTINGS)]
    total = _total(reports)
    assert total["tickets_expired"] == len(backlog.expiring)
    assert total["tickets_escalated"] == len(backlog.escalating)
    assert total["holds_released"] == backlog.holds
    assert total["sessions_paused"] == len(backlog.active)
    assert total["sessions_pruned"] == len(backlog.finished)
    assert total["events_pruned"] == backlog.finished_events
    assert total["webhook_failures"] == total["sessions_not_pruned"] == 0

    escalated: Counter[str] = Counter()
    expired: Counter[str] = Counter()
    stale: Counter[uuid.UUID] = Counter()
    for session in cp.list_sessions(limit=1000).items:
        for event in all_events(cp, session.id):
            if event.kind == "approval.escalated":
                escalated[event.payload["ticket_id"]] += 1
            elif event.kind == "approval.expired":
                expired[event.payload["ticket_id"]] += 1
            elif event.reason == "heartbeat.timeout":
                stale[session.id] += 1
    assert escalated == Counter(str(t) for t in backlog.escalating)
    assert expired == Counter(str(t) for t in backlog.expiring)
    assert stale == Counter(backlog.active)
    assert all(cp.get_ticket(t).escalated_at is not None for t in backlog.escalating)
    assert {cp.get_session(sid).status for sid in backlog.active} == {"paused"}
    assert all(cp.events(sid) == [] for sid in backlog.finished)
    assert window_counters(cp) == (0, 0, Decimal(0), 0)
    assert reservation_statuses(cp) == {"expired": backlog.holds}
    audit = cp.verify_audit()
    assert audit.ok, audit.problems


def test_concurrent_worker_threads_process_everything_once(control_plane: ControlPlane) -> None:
    cp = control_plane
    backlog = _backlog(cp)
    barrier = threading.Barrier(WORKERS)

    def worker() -> MaintenanceReport:
        barrier.wait()
        return cp.run_maintenance(**SETTINGS)

    with ThreadPoolExecutor(WORKERS) as pool:
        reports = [f.result() for f in [pool.submit(worker) for _ in range(WORKERS)]]
    _assert_each_done_once(cp, backlog, reports)


def _process_worker(url: str, barrier: Any) -> dict[str, Any]:
    with ControlPlane.open(url, migrate="verify") as cp:
        barrier.wait()
        return cp.run_maintenance(**SETTINGS).to_json_data()


@pytest.mark.slow
def test_concurrent_worker_processes_process_everything_once(pg_database: TestDatabase) -> None:
    with ControlPlane.open(pg_database.url_string) as cp:
        backlog = _backlog(cp)
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            barrier = manager.Barrier(WORKERS)
            with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
                futures = [
                    pool.submit(_process_worker, pg_database.url_string, barrier)
                    for _ in range(WORKERS)
                ]
                results = [f.result() for f in futures]
        names = {f.name for f in fields(MaintenanceReport)}
        reports = [MaintenanceReport(**{k: v for k, v in r.items() if k in names}) for r in results]
        _assert_each_done_once(cp, backlog, reports)
