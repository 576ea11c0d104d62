"""Connections kept between operations: only on a SQLite file ACP opened, and only as the
pool would hand them out again (no transaction open, not invalidated)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection

from agent_control_plane import ControlPlane
from agent_control_plane.connections import Connections
from agent_control_plane.errors import InvalidInputError
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT


def _open_session(cp: ControlPlane) -> Any:
    return cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="100", max_actions=1000).id


def test_a_sqlite_file_it_opened_keeps_one_connection_for_the_next_operation(
    tmp_path: Path,
) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        sid = _open_session(cp)
        used: list[int] = []
        event.listen(
            cp.engine, "before_cursor_execute", lambda conn, *a: used.append(id(conn.connection))
        )
        checkouts: list[object] = []
        event.listen(cp.engine.pool, "checkout", lambda *a: checkouts.append(a))
        for _ in range(5):
            assert cp.govern(sid, "work").allowed
        assert checkouts == []  # no trip through the pool...
        assert cp._connections.idle == 1  # ...one connection, kept
        assert cp.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        cp.close()
        assert cp._connections.idle == 0
        assert cp.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_many_threads_keep_no_more_than_the_pool_size(tmp_path: Path) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        sid = _open_session(cp)
        barrier = threading.Barrier(12)

        def work() -> None:
            barrier.wait()
            for _ in range(20):
                cp.govern(sid, "work")

        threads = [threading.Thread(target=work) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 <= cp._connections.idle <= cp.engine.pool.size()  # type: ignore[attr-defined]
        assert cp.get_session(sid).actions_used == 240


def _leave_a_transaction_open(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))  # autobegins: BEGIN IMMEDIATE, SQLite's write lock


def _invalidate(connection: Connection) -> None:
    connection.invalidate()


def test_a_connection_comes_back_without_its_transaction(tmp_path: Path) -> None:
    path = tmp_path / "acp.db"
    with ControlPlane.open(f"sqlite:///{path}") as cp:
        connections = cp._connections
        connections.run(_leave_a_transaction_open)
        assert connections.idle == 1
        # Were the transaction still open, it would hold the write lock: this would fail.
        other = sqlite3.connect(path, timeout=0.2)
        try:
            other.execute("CREATE TABLE written_by_another_connection (id INTEGER)")
            other.commit()
        finally:
            other.close()


def test_an_invalidated_or_failed_connection_is_not_kept(tmp_path: Path) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        connections = cp._connections
        connections.run(_invalidate)
        assert connections.idle == 0

        def refuse(connection: Connection) -> None:
            with connection.begin():
                connection.execute(text("SELECT 1"))
                raise InvalidInputError("x", "refused")

        with pytest.raises(InvalidInputError):
            connections.run(refuse)
        assert connections.idle == 1  # ACP's own error: rolled back, still good, kept
        assert connections.run(lambda connection: connection.in_transaction()) is False

        def fail(connection: Connection) -> None:
            with connection.begin():
                connection.execute(text("SELECT 1"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            connections.run(fail)
        assert connections.idle == 0  # any other failure: back to the pool, which checks it


def test_other_engines_check_out_for_every_operation(
    database: TestDatabase, tmp_path: Path
) -> None:
    with ControlPlane.open(database.url_string) as cp:
        sid = _open_session(cp)
        cp.govern(sid, "work")
        # PostgreSQL and MariaDB ping the server at checkout; SQLite files keep a connection.
        assert cp._connections.idle == (1 if database.dialect == "sqlite" else 0)
    host = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    try:
        with ControlPlane.open(host) as cp:
            cp.govern(_open_session(cp), "work")
            assert cp._connections.idle == 0  # a host's pool is the host's
            assert host.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        host.dispose()
    with ControlPlane.open("sqlite://") as memory:
        memory.govern(_open_session(memory), "work")
        assert memory._connections.idle == 0


def _in_forked_child(cp: ControlPlane, sid: Any, results: Any) -> None:
    kept = cp._connections.idle
    cp.govern(sid, "work")
    results.put((kept, cp.get_session(sid).actions_used))


def test_a_forked_child_does_not_use_its_parents_connections(tmp_path: Path) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        sid = _open_session(cp)
        cp.govern(sid, "work")
        assert cp._connections.idle == 1
        parents = cp._connections._idle[0]
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_in_forked_child, args=(cp, sid, results))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert results.get(timeout=5) == (0, 2)
        # The parent's connection was neither used nor closed by the child.
        assert cp._connections._idle == [parents]
        assert not parents.closed
        cp.govern(sid, "work")
        assert cp.get_session(sid).actions_used == 3


def test_connections_run_the_operation_with_its_arguments(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        connections = Connections(engine, keep=1)
        assert connections.run(lambda c, a, *, b: (a, b), 1, b=2) == (1, 2)
        connections.close()
        assert connections.idle == 0
        assert connections.run(lambda c: c.scalar(text("SELECT 7"))) == 7
        assert connections.idle == 0  # closed: nothing kept any more
    finally:
        engine.dispose()
