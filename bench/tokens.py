"""reserve_tokens + settle pairs per second, single thread and 8 workers on one budget."""

from __future__ import annotations

import threading
import time

from agent_control_plane import ControlPlane
from agent_control_plane.rules.tokens import Identity, TokenUsage

PRICES = {"bench-model": {"input": "0.15", "output": "0.60"}}
USAGE = TokenUsage(input_tokens=500, output_tokens=200)


def _pair(cp: ControlPlane, identity: Identity) -> None:
    hold = cp.reserve_tokens(identity, "bench-model", input_tokens=500, max_output_tokens=500)
    cp.settle(hold, USAGE)


def _prepare(cp: ControlPlane) -> None:
    cp.set_prices(PRICES)
    if not cp.list_token_budgets():
        cp.set_token_budget(Identity(org="bench"), "month", max_tokens=10**15)


def pairs_per_second(url: str, seconds: float) -> float:
    with ControlPlane.open(url) as cp:
        _prepare(cp)
        identity = Identity(org="bench", user="solo")
        for _ in range(20):
            _pair(cp, identity)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            _pair(cp, identity)
            count += 1
        return count / (time.perf_counter() - started)


def concurrent_pairs_per_second(url: str, seconds: float, workers: int = 8) -> float:
    """Every worker charges the same org-wide budget: one hot window row."""
    with ControlPlane.open(url) as cp:
        _prepare(cp)
        counts = [0] * workers
        stop = threading.Event()

        def run(index: int) -> None:
            identity = Identity(org="bench", user=f"worker-{index}")
            while not stop.is_set():
                _pair(cp, identity)
                counts[index] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started)
