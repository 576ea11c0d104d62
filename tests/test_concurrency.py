"""Concurrency claims, proven with real threads, processes and tasks on every database."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.models import Decision, Event, Outcome
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT

THREADS, CALLS = 8, 50


def _assert_exact(cp: ControlPlane, sid: uuid.UUID, decisions: list[Decision], limit: int) -> None:
    allowed = [d for d in decisions if d.outcome is Outcome.ALLOWED]
    assert len(allowed) == limit
    assert {d.reason for d in decisions if not d.allowed} == {"budget.max_actions"}
    session = cp.get_session(sid)
    assert session.actions_used == limit
    assert session.cost_used == Decimal("0.001") * limit
    seqs = [e.seq for e in all_events(cp, sid)]
    assert seqs == list(range(1, len(decisions) + 2))
    assert sorted(d.event_seq for d in decisions) == seqs[1:]
    assert cp.verify_audit(sid).ok


def all_events(cp: ControlPlane, sid: uuid.UUID) -> list[Event]:
    events: list[Event] = []
    while batch := cp.events(sid, after_seq=events[-1].seq if events else 0, limit=10_000):
        events += batch
    return events


def _open(cp: ControlPlane, limit: int) -> uuid.UUID:
    return cp.open_session(
        agent_id="swarm", policy=SUPPORT_BOT, max_cost=1000, max_actions=limit
    ).id


def test_threads_charge_exactly_the_budget(control_plane: ControlPlane) -> None:
    sid = _open(control_plane, 200)
    barrier = threading.Barrier(THREADS)

    def worker() -> list[Decision]:
        barrier.wait()
        return [control_plane.govern(sid, "work", cost="0.001") for _ in range(CALLS)]

    with ThreadPoolExecutor(THREADS) as pool:
        decisions = [d for f in [pool.submit(worker) for _ in range(THREADS)] for d in f.result()]
    _assert_exact(control_plane, sid, decisions, 200)


def _process_worker(url: str, sid: str, calls: int, barrier: object) -> list[dict[str, object]]:
    barrier.wait()  # type: ignore[attr-defined]
    with ControlPlane.open(url, migrate="verify") as cp:
        return [cp.govern(sid, "work", cost="0.001").to_json_data() for _ in range(calls)]


@pytest.mark.slow
def test_processes_charge_exactly_the_budget(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    sid = _open(control_plane, 100)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            futures = [
                pool.submit(_process_worker, database.url_string, str(sid), CALLS, barrier)
                for _ in range(4)
            ]
            decisions = [Decision.from_json_data(d) for f in futures for d in f.result(timeout=240)]
    _assert_exact(control_plane, sid, decisions, 100)


async def test_async_tasks_charge_exactly_the_budget(
    async_control_plane: AsyncControlPlane, control_plane: ControlPlane
) -> None:
    acp = async_control_plane
    session = await acp.open_session(
        agent_id="swarm", policy=SUPPORT_BOT, max_cost=1000, max_actions=200
    )

    async def worker() -> list[Decision]:
        return [await acp.govern(session.id, "work", cost="0.001") for _ in range(CALLS)]

    results = await asyncio.gather(*(worker() for _ in range(THREADS)))
    decisions = [d for chunk in results for d in chunk]
    await asyncio.to_thread(_assert_exact, control_plane, session.id, decisions, 200)


def test_concurrent_retries_with_one_key_have_one_effect(control_plane: ControlPlane) -> None:
    sid = _open(control_plane, 100)
    barrier = threading.Barrier(16)

    def retry() -> Decision:
        barrier.wait()
        return control_plane.govern(sid, "work", cost="0.25", idempotency_key="only-once")

    with ThreadPoolExecutor(16) as pool:
        decisions = list(pool.map(lambda _: retry(), range(16)))
    assert all(d == decisions[0] for d in decisions)
    assert decisions[0].allowed
    session = control_plane.get_session(sid)
    assert (session.actions_used, session.cost_used) == (1, Decimal("0.25"))
    assert [e.kind for e in control_plane.events(sid)] == ["session.opened", "decision"]
    keys = control_plane.tables.idempotency_keys
    with control_plane.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(keys)).scalar() == 1


def test_nothing_allowed_commits_after_a_kill(control_plane: ControlPlane) -> None:
    sid = _open(control_plane, 1_000_000)
    stop = threading.Event()
    decisions: list[Decision] = []
    lock = threading.Lock()

    def storm() -> None:
        while not stop.is_set():
            decision = control_plane.govern(sid, "work", cost="0")
            with lock:
                decisions.append(decision)
            if decision.reason == "session.killed":
                return

    threads = [threading.Thread(target=storm) for _ in range(6)]
    for thread in threads:
        thread.start()
    while len(decisions) < 60:
        threading.Event().wait(0.005)
    assert control_plane.kill_session(sid, reason="stop now") == 1
    after_kill = control_plane.govern(sid, "work")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    events = all_events(control_plane, sid)
    (killed,) = [e for e in events if e.kind == "session.killed"]
    late = [
        e for e in events if e.kind == "decision" and e.outcome == "allowed" and e.seq > killed.seq
    ]
    assert late == []
    assert all(d.event_seq < killed.seq for d in decisions if d.allowed)
    assert after_kill.reason == "session.killed"
    allowed_events = [e for e in events if e.kind == "decision" and e.outcome == "allowed"]
    assert control_plane.get_session(sid).actions_used == len(allowed_events)
    assert control_plane.verify_audit(sid).ok
