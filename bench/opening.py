"""How long opening takes: ControlPlane.open (a cold migration, a warm open of a current
schema) and open_session."""

from __future__ import annotations

import time

from agent_control_plane import ControlPlane
from bench.timing import ops_per_second

_POLICY = {"name": "bench", "tiers": {"unrestricted": ["work"]}}


def cold_open_seconds(url: str) -> float:
    started = time.perf_counter()
    ControlPlane.open(url).close()
    return time.perf_counter() - started


def warm_opens_per_second(url: str, seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        ControlPlane.open(url, migrate="verify").close()
        count += 1
    return count / (time.perf_counter() - started)


def open_sessions_per_second(url: str, seconds: float) -> float:
    """``open_session`` under a stored policy, in a loop: the kill check, the session row
    and its opening event in one transaction."""
    with ControlPlane.open(url) as cp:
        first = cp.open_session(agent_id="bench", policy=_POLICY, max_cost=1, max_actions=5)
        return ops_per_second(
            lambda: cp.open_session(
                agent_id="bench", policy=first.policy_id, max_cost=1, max_actions=5
            ),
            seconds,
        )
