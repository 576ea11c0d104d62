"""reserve_tokens + settle pairs per second, single thread and 8 workers on one budget."""

from __future__ import annotations

from agent_control_plane import ControlPlane
from agent_control_plane.rules.tokens import Identity, TokenUsage
from bench.timing import concurrent_ops_per_second, ops_per_second

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
        return ops_per_second(lambda: _pair(cp, identity), seconds)


def concurrent_pairs_per_second(url: str, seconds: float, workers: int = 8) -> float:
    """Every worker charges the same org-wide budget: one hot window row."""
    with ControlPlane.open(url) as cp:
        _prepare(cp)
        identities = [Identity(org="bench", user=f"worker-{i}") for i in range(workers)]
        return concurrent_ops_per_second(lambda i: _pair(cp, identities[i]), seconds, workers)
