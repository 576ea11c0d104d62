"""How long ControlPlane.open takes: a cold migration, and a warm open of a current schema."""

from __future__ import annotations

import time

from agent_control_plane import ControlPlane


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
