"""What a control plane remembers is bounded, and forgetting never changes a result."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from agent_control_plane import ControlPlane
from agent_control_plane.memory import DEFAULT_ENTRIES, Bounded, Memory

POLICY = {"name": "p", "tiers": {"auto_approve": ["work"]}}


def _caches(cp: ControlPlane) -> dict[str, int]:
    return cp._runtime.memory.sizes()


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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_hundred_thousand_sessions_keep_every_cache_within_its_bound() -> None:
    # In memory: what is measured is ACP's memory, not the disk (about a minute).
    with ControlPlane.open("sqlite://") as cp:
        first = cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=5)
        cp.govern(first.id, "work", cost="0.1")
        newest = first
        for opened in range(1, 100_000):
            newest = cp.open_session(
                agent_id="bot", policy=first.policy_id, max_cost=1, max_actions=5
            )
            if opened % 10_000 == 0:
                assert max(_caches(cp).values()) <= DEFAULT_ENTRIES
        assert cp.govern(newest.id, "work", cost="0.1").allowed
        sizes = _caches(cp)
        assert sizes["sessions"] == DEFAULT_ENTRIES
        assert max(sizes.values()) <= DEFAULT_ENTRIES
        # The first session was forgotten long ago: it is read again, and decides the same.
        assert cp.govern(first.id, "work", cost="0.1").remaining_actions == 3
        assert cp.verify_audit(session_id=first.id).ok


def test_memory_is_reached_only_through_its_methods() -> None:
    memory = Memory(limit=2)
    for n in range(5):
        memory.remember_limits(uuid.UUID(int=n), Decimal(n), n)
        memory.remember_head(uuid.UUID(int=n), n + 1, "h", (Decimal(0), 0))
    assert memory.sizes() == {
        "sessions": 0,
        "policies": 0,
        "chain_heads": 2,
        "session_limits": 2,
        "token_budgets": 0,
        "api_keys": 0,
    }
    assert memory.limits(uuid.UUID(int=0)) is None
    assert memory.limits(uuid.UUID(int=4)) == (Decimal(4), 4)
    memory.bound(1)  # shrinking forgets the oldest at once
    assert memory.sizes()["chain_heads"] == 1
    memory.forget_head(uuid.UUID(int=4))
    assert memory.head(uuid.UUID(int=4)) is None
    with pytest.raises(ValueError, match="at least one"):
        memory.bound(0)


def test_runtime_and_memory_read_nothing_themselves() -> None:
    """The memory keeps what operations read; neither it nor Runtime imports store/ (the
    import cycle it used to close, function-level imports included)."""
    import ast

    import agent_control_plane.memory as memory_module
    import agent_control_plane.runtime as runtime_module

    for module in (memory_module, runtime_module):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module is not None
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not {name for name in imported if name.startswith("agent_control_plane.store")}
        assert not {name for name in imported if name.startswith("agent_control_plane.operations")}
