"""Evaluator plugins in govern: entry points, errors that deny, and the one fail-open switch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from agent_control_plane import ConfigurationError, ControlPlane
from agent_control_plane.errors import PolicyError
from agent_control_plane.evaluators import EvaluatorRegistry
from agent_control_plane.rules.proposal import Proposal
from tests.databases import TestDatabase

POLICY: dict[str, Any] = {
    "name": "with-evaluator",
    "default": "allow",
    "rules": [{"name": "pii", "when": {"evaluator": "pii", "params": {}}, "outcome": "deny"}],
}


def looks_like_pii(params: dict[str, Any], proposal: Proposal) -> bool:
    return "ssn" in str(proposal.args)


def test_entry_point_plugins_load_or_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "fake_evaluators-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-evaluators\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[agent_control_plane.evaluators]\n"
        "pii = tests.test_evaluators:looks_like_pii\n"
        "broken = no_such_module_anywhere:check\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = EvaluatorRegistry()
    registry.require({"pii"})
    assert registry.call("pii", {}, Proposal("x", args={"v": "my ssn"}), timeout=1) is True
    with pytest.raises(PolicyError, match=r"'broken' .* failed to load"):
        registry.require({"broken"})
    assert "no_such_module_anywhere" not in sys.modules


def test_evaluators_decide_and_their_errors_deny(control_plane: ControlPlane) -> None:
    cp = control_plane
    with pytest.raises(PolicyError, match="unknown evaluator 'pii'"):
        cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=10)
    cp.register_evaluator("pii", looks_like_pii)
    sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=10).id
    assert cp.govern(sid, "send", args={"body": "hello"}).allowed
    assert cp.govern(sid, "send", args={"body": "ssn 123"}).reason == "rule:pii"

    def broken(params: dict[str, Any], proposal: Proposal) -> bool:
        raise RuntimeError("model server down")

    cp.register_evaluator("pii", broken)
    decision = cp.govern(sid, "send", args={"body": "hello"})
    assert (decision.outcome.value, decision.reason) == ("denied", "evaluator.error:pii")


def test_fail_open_is_explicit_and_only_for_evaluators(database: TestDatabase) -> None:
    with pytest.raises(ConfigurationError, match="budgets, the kill check and database"):
        ControlPlane.open(database.url_string, fail_open=["budget"])

    def broken(params: dict[str, Any], proposal: Proposal) -> bool:
        raise RuntimeError("model server down")

    with ControlPlane.open(database.url_string, fail_open=["evaluator"]) as cp:
        cp.register_evaluator("pii", broken)
        sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=10).id
        decision = cp.govern(sid, "send", args={"body": "ssn"})
        assert (decision.outcome.value, decision.reason) == ("allowed", "policy.default_allow")
