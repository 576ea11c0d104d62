"""AsyncControlPlane on SQLite: a file ACP opened runs each operation in one worker thread;
a host's engine and in-memory databases stay on aiosqlite."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from agent_control_plane import AsyncControlPlane
from tests.policies import SUPPORT_BOT


def _count_statements(engine: Any, seen: list[str]) -> None:
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))


async def test_a_file_it_opened_runs_operations_on_a_worker_thread(tmp_path: Path) -> None:
    async with await AsyncControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        assert cp._threaded is not None
        threads: set[int] = set()
        event.listen(
            cp._threaded.engine,
            "before_cursor_execute",
            lambda *a: threads.add(threading.get_ident()),
        )
        through_aiosqlite: list[str] = []
        _count_statements(cp.engine.sync_engine, through_aiosqlite)
        session = await cp.open_session(
            agent_id="a", policy=SUPPORT_BOT, max_cost="1", max_actions=10
        )
        decisions = await asyncio.gather(*(cp.govern(session.id, "work") for _ in range(12)))
        assert sum(d.allowed for d in decisions) == 10  # exact under concurrent tasks
        assert threads  # the worker threads ran the statements...
        assert threading.get_ident() not in threads  # ...never the event loop
        assert through_aiosqlite == []
        # Whatever wrote it, the async engine reads the same database.
        assert (await cp.get_session(session.id)).actions_used == 10
        assert (await cp.verify_audit(session.id)).ok


async def test_a_hosts_engine_and_memory_stay_on_aiosqlite(tmp_path: Path) -> None:
    host = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'host.db'}")
    seen: list[str] = []
    _count_statements(host.sync_engine, seen)
    try:
        async with await AsyncControlPlane.open(host) as cp:
            assert cp._threaded is None
            session = await cp.open_session(
                agent_id="a", policy=SUPPORT_BOT, max_cost="1", max_actions=10
            )
            before = len(seen)
            assert (await cp.govern(session.id, "work")).allowed
            assert len(seen) > before  # the host's own pool carried it
    finally:
        await host.dispose()
    async with await AsyncControlPlane.open("sqlite+aiosqlite://") as memory:
        assert memory._threaded is None
        session = await memory.open_session(
            agent_id="a", policy=SUPPORT_BOT, max_cost="1", max_actions=10
        )
        assert (await memory.govern(session.id, "work")).allowed
