"""govern(): single-thread ops/s, 8 concurrent workers, and statements per decision."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

from sqlalchemy import event

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.store.prepared import Prepared
from bench.timing import concurrent_latencies, concurrent_ops_per_second, ops_per_second

POLICY = {"name": "bench", "tiers": {"unrestricted": ["work"]}}
_keys = itertools.count()


def _session(cp: ControlPlane) -> uuid.UUID:
    return cp.open_session(agent_id="bench", policy=POLICY, max_cost=10**8, max_actions=10**12).id


def _one(cp: ControlPlane, sid: uuid.UUID) -> None:
    decision = cp.govern(sid, "work", cost="0.0001", idempotency_key=f"k{next(_keys)}")
    assert decision.allowed


# What `make bench` keys the chain with to measure the keyed configuration.
BENCH_AUDIT_KEY = "bench audit key: thirty-two bytes or more"


def govern_ops_per_second(url: str, seconds: float, audit_key: str | None = None) -> float:
    """Warm govern calls in a loop; with ``audit_key``, every link is an HMAC."""
    with ControlPlane.open(url, audit_key=audit_key) as cp:
        sid = _session(cp)
        return ops_per_second(lambda: _one(cp, sid), seconds)


def _one_with_outcome(cp: ControlPlane, sid: uuid.UUID) -> None:
    decision = cp.govern(sid, "work", cost="0.0001", idempotency_key=f"k{next(_keys)}")
    cp.record_outcome(decision, "succeeded", actual_cost="0.00005")


def govern_and_outcome_per_second(url: str, seconds: float) -> float:
    """An agent's whole step: govern, act, record_outcome (settling a smaller actual cost)."""
    with ControlPlane.open(url) as cp:
        sid = _session(cp)
        return ops_per_second(lambda: _one_with_outcome(cp, sid), seconds)


def async_govern_ops_per_second(url: str, seconds: float) -> float:
    """AsyncControlPlane.govern awaited in a loop (on SQLite: one worker-thread hop each)."""

    async def measure() -> float:
        async with await AsyncControlPlane.open(url) as cp:
            sid = (
                await cp.open_session(
                    agent_id="bench", policy=POLICY, max_cost=10**8, max_actions=10**12
                )
            ).id
            for _ in range(20):
                await cp.govern(sid, "work", cost="0.0001", idempotency_key=f"k{next(_keys)}")
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                await cp.govern(sid, "work", cost="0.0001", idempotency_key=f"k{next(_keys)}")
                count += 1
            return count / (time.perf_counter() - started)

    return asyncio.run(measure())


def statements_per_decision(url: str) -> tuple[int, list[str]]:
    """Statements the database receives for one warm govern, BEGIN and COMMIT included."""
    with ControlPlane.open(url) as cp:
        sid = _session(cp)
        _one(cp, sid)
        seen: list[str] = []
        direct = Prepared._run

        def counted(self: Prepared, *args: Any, **kwargs: Any) -> Any:
            seen.append(self.sql.split()[0].upper())
            return direct(self, *args, **kwargs)

        def on_execute(*args: Any) -> None:
            seen.append(str(args[2]).split()[0].upper())

        event.listen(cp.engine, "before_cursor_execute", on_execute)

        def on_begin(conn: Any) -> None:
            # SQLAlchemy begins a transaction of its own around a statement sent in
            # autocommit (the one-statement decision): the server sees no BEGIN then.
            if getattr(conn.connection.driver_connection, "autocommit", False) is not True:
                seen.append("BEGIN")

        event.listen(cp.engine, "begin", on_begin)
        event.listen(cp.engine, "commit", lambda conn: seen.append("COMMIT"))
        Prepared._run = counted  # type: ignore[method-assign]
        try:
            _one(cp, sid)
        finally:
            Prepared._run = direct  # type: ignore[method-assign]
        return len(seen), seen


def concurrent_govern_ops_per_second(url: str, seconds: float, workers: int = 8) -> float:
    with ControlPlane.open(url) as cp:
        sessions = [_session(cp) for _ in range(workers)]
        return concurrent_ops_per_second(lambda i: _one(cp, sessions[i]), seconds, workers)


def govern_latencies(url: str, seconds: float, workers: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of one govern call, ``workers`` threads on distinct sessions."""
    with ControlPlane.open(url) as cp:
        sessions = [_session(cp) for _ in range(workers)]
        for sid in sessions:
            _one(cp, sid)
        return concurrent_latencies(lambda i: _one(cp, sessions[i]), seconds, workers)
