"""Standing kills: a killed agent, tenant or database opens no new session until lifted."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest
from sqlalchemy import func, select

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import InvalidInputError, KilledScopeError
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT


def _open(cp: ControlPlane, agent: str, tenant: str | None = "t1") -> uuid.UUID:
    return cp.open_session(
        agent_id=agent, tenant=tenant, policy=SUPPORT_BOT, max_cost="1", max_actions=10
    ).id


def _session_count(cp: ControlPlane) -> int:
    with cp.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(cp.tables.sessions)).scalar_one()
        )


def test_a_killed_agent_opens_no_session_until_the_kill_is_lifted(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    running = _open(cp, "a1")
    assert cp.kill_agent("a1", reason="runaway", by="alice") == 1
    assert cp.get_session(running).status == "aborted"
    (killed,) = [e for e in cp.events(running) if e.kind == "session.killed"]
    assert (killed.reason, killed.payload["by"]) == ("runaway", "alice")

    before = _session_count(cp)
    with pytest.raises(KilledScopeError, match=r"agent 'a1' was killed .*runaway"):
        _open(cp, "a1")
    with pytest.raises(KilledScopeError):
        _open(cp, "a1", tenant=None)
    assert _session_count(cp) == before  # refused before anything was written
    _open(cp, "a2")  # another agent is not covered

    (standing,) = cp.list_kills()
    assert (standing.scope, standing.agent_id, standing.tenant) == ("agent", "a1", None)
    assert (standing.active, standing.reason, standing.killed_by) == (True, "runaway", "alice")
    assert standing.killed_at is not None

    assert cp.lift_kill(agent_id="a1", by="bob") is True
    assert cp.lift_kill(agent_id="a1") is False  # nothing standing any more
    assert cp.get_session(running).status == "aborted"  # a stopped session stays stopped
    sid = cp.open_session(
        agent_id="a1", tenant="t1", policy=SUPPORT_BOT, max_cost="1", max_actions=10
    ).id
    assert cp.govern(sid, "work").allowed
    assert cp.list_kills() == []
    (lifted,) = cp.list_kills(include_lifted=True)
    assert (lifted.active, lifted.lifted_at is not None, lifted.lifted_by) == (False, True, "bob")
    # Killed again: standing again, by whoever killed it this time, no longer lifted.
    cp.kill_agent("a1", reason="again")
    (again,) = cp.list_kills()
    assert (again.reason, again.killed_by, again.lifted_at, again.lifted_by) == (
        "again",
        None,
        None,
        None,
    )


def test_each_scope_covers_exactly_its_sessions(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.kill_agent("a1", tenant="t1")
    with pytest.raises(KilledScopeError, match="agent 'a1' in tenant 't1'"):
        _open(cp, "a1", tenant="t1")
    _open(cp, "a1", tenant="t2")
    _open(cp, "a1", tenant=None)
    assert cp.lift_kill(agent_id="a1") is False  # that kill names a tenant
    assert cp.lift_kill(agent_id="a1", tenant="t1") is True

    cp.kill_tenant("t1")
    with pytest.raises(KilledScopeError, match="tenant 't1'"):
        _open(cp, "anyone", tenant="t1")
    _open(cp, "anyone", tenant="t2")
    _open(cp, "anyone", tenant=None)

    cp.kill_all(reason="incident")
    for tenant in ("t1", "t2", None):
        with pytest.raises(KilledScopeError, match="everything was killed"):
            _open(cp, "anyone", tenant=tenant)
    assert {kill.target for kill in cp.list_kills()} == {"everything", "tenant 't1'"}
    assert cp.lift_kill() is True
    with pytest.raises(KilledScopeError, match="tenant 't1'"):
        _open(cp, "anyone", tenant="t1")  # the tenant's own kill still stands
    _open(cp, "anyone", tenant="t2")

    # Killed again after a lift: standing again, with the new reason.
    cp.lift_kill(tenant="t1")
    cp.kill_tenant("t1", reason="again")
    (again,) = cp.list_kills()
    assert (again.target, again.reason, again.lifted_at) == ("tenant 't1'", "again", None)


def test_lifting_checks_its_input(control_plane: ControlPlane) -> None:
    with pytest.raises(InvalidInputError, match="agent_id"):
        control_plane.lift_kill(agent_id="")
    with pytest.raises(InvalidInputError, match="tenant"):
        control_plane.lift_kill(tenant="x" * 201)
    with pytest.raises(InvalidInputError, match="by"):
        control_plane.kill_agent("a1", by="")
    assert control_plane.list_kills() == []  # refused before anything was written


def test_no_session_of_a_killed_agent_survives_a_race_with_openings(
    control_plane: ControlPlane,
) -> None:
    """Threads keep opening sessions of one agent (and governing in them) while the agent
    is killed: once the kill has returned, every session of the agent is stopped, and
    every later opening is refused."""
    cp = control_plane
    opened: list[uuid.UUID] = []
    refused = threading.Event()
    started = threading.Barrier(7)

    def agent_loop() -> None:
        started.wait()
        while not refused.is_set():
            try:
                sid = _open(cp, "swarm")
            except KilledScopeError:
                refused.set()
                return
            opened.append(sid)
            cp.govern(sid, "work")

    threads = [threading.Thread(target=agent_loop) for _ in range(6)]
    for thread in threads:
        thread.start()
    started.wait()
    while len(opened) < 6:
        threading.Event().wait(0.005)
    stopped = cp.kill_agent("swarm")
    survivors = [sid for sid in opened if cp.get_session(sid).status != "aborted"]
    refused.set()
    for thread in threads:
        thread.join()
    # Sessions whose opening committed before the kill's sweep were stopped by it; the
    # rest were refused. None was opened in between.
    assert stopped >= 6
    with cp.engine.connect() as connection:
        sessions = cp.tables.sessions
        statuses = set(
            connection.execute(
                select(sessions.c.status).where(sessions.c.agent_id == "swarm")
            ).scalars()
        )
    assert statuses == {"aborted"}, survivors
    with pytest.raises(KilledScopeError):
        _open(cp, "swarm")


def _opening_process(url: str, opened: object, deadline: float) -> int:
    """Open sessions of agent "swarm" (governing once in each) until refused; count them."""
    count = 0
    with ControlPlane.open(url, migrate="verify") as cp:
        while time.monotonic() < deadline:
            try:
                sid = _open(cp, "swarm")
            except KilledScopeError:
                return count
            cp.govern(sid, "work")
            count += 1
            opened.value += 1  # type: ignore[attr-defined]
    raise AssertionError("never refused: the kill did not stand")


def test_no_session_of_a_killed_agent_survives_processes_racing_the_kill(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    """The same race across 4 processes, each with its own connection pool."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        opened = manager.Value("i", 0)
        deadline = time.monotonic() + 120
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            futures = [
                pool.submit(_opening_process, database.url_string, opened, deadline)
                for _ in range(4)
            ]
            while opened.value < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            stopped = control_plane.kill_agent("swarm")
            counts = [future.result(timeout=180) for future in futures]
    assert stopped >= 8
    sessions = control_plane.tables.sessions
    with control_plane.engine.connect() as connection:
        statuses = list(
            connection.execute(
                select(sessions.c.status).where(sessions.c.agent_id == "swarm")
            ).scalars()
        )
    assert len(statuses) == sum(counts)  # every opening that committed was counted
    assert set(statuses) == {"aborted"}


async def test_standing_kills_async(async_control_plane: AsyncControlPlane) -> None:
    cp = async_control_plane
    await cp.kill_agent("a1")
    with pytest.raises(KilledScopeError):
        await cp.open_session(
            agent_id="a1", tenant="t1", policy=SUPPORT_BOT, max_cost="1", max_actions=10
        )
    assert [kill.agent_id for kill in await cp.list_kills()] == ["a1"]
    assert await cp.lift_kill(agent_id="a1") is True
    await cp.open_session(
        agent_id="a1", tenant="t1", policy=SUPPORT_BOT, max_cost="1", max_actions=10
    )
