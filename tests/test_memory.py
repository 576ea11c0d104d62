"""What a control plane remembers is bounded, and forgetting never changes a result."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from agent_control_plane import ControlPlane
from agent_control_plane.memory import DEFAULT_ENTRIES, Bounded

POLICY = {"name": "p", "tiers": {"auto_approve": ["work"]}}


def _caches(cp: ControlPlane) -> dict[str, int]:
    runtime = cp._runtime
    return {
        "sessions": len(runtime.sessions),
        "policies": len(runtime.policies),
        "chain_heads": len(runtime.chain_heads),
        "chain_counters": len(runtime.chain_counters),
        "token_budgets": len(runtime.token_budgets),
    }


def test_a_bounded_cache_forgets_the_least_recently_used() -> None:
    cache: Bounded[int, str] = Bounded(3)
    for key in range(100_000):
        cache[key] = str(key)
        assert len(cache) <= 3
    assert cache.get(99_997) == "99997"  # now the most recently used
    cache[100_000] = "new"
    assert 99_997 in cache
    assert 99_998 not in cache
    assert cache.get(1) is None


def test_more_sessions_than_the_bound_keep_every_cache_within_it(tmp_path: Path) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        count = DEFAULT_ENTRIES + 500
        for _ in range(count):
            session = cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=5)
        cp.govern(session.id, "work", cost="0.1")
        assert max(_caches(cp).values()) <= DEFAULT_ENTRIES
        assert _caches(cp)["sessions"] == DEFAULT_ENTRIES


def test_forgetting_changes_no_result(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    cp, other = two_control_planes
    cp._runtime.bound_memory(2)
    sessions = [
        cp.open_session(agent_id=f"bot-{n}", policy=POLICY, max_cost="1", max_actions=6)
        for n in range(3)
    ]
    for round_number in range(4):
        for index, session in enumerate(sessions):
            writer = other if (round_number + index) % 3 == 0 else cp
            decision = writer.govern(session.id, "work", cost="0.1")
            assert decision.allowed
            writer.record_outcome(decision, "succeeded", actual_cost="0.05")
            assert max(_caches(cp).values()) <= 2
    for session in sessions:
        stored = cp.get_session(session.id)
        assert stored.actions_used == 4
        assert stored.cost_used == Decimal("0.20")
        assert cp.verify_audit(session_id=session.id).ok
    assert cp.verify_audit().ok
