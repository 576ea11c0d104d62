"""Policy documents, conditions and routing: pure rules, no database."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent_control_plane.errors import PolicyError
from agent_control_plane.evaluators import EvaluatorRegistry
from agent_control_plane.loading import load_policy_file
from agent_control_plane.rules import conditions
from agent_control_plane.rules.policy import (
    PolicyDocument,
    dump_policy,
    parse_policy,
)
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import (
    CompiledPolicy,
    EvaluatorFailure,
    Outcome,
    Route,
    route,
)

SUPPORT_BOT: dict[str, Any] = {
    "name": "support-bot",
    "mode": "live",
    "default": "deny",
    "tiers": {
        "auto_approve": ["read_ticket", "search_kb"],
        "always_approve": ["issue_refund"],
        "steer": {"close_account": "Ask the customer to confirm in writing first."},
        "blocked": ["drop_database", "delete_*"],
        "unrestricted": ["log_note"],
    },
    "risk": {"max_weight": 0.5, "min_score": 0.7},
    "assets": {"deny": ["prod/*"]},
    "approval_timeout": "1h",
}


def _no_evaluators(name: str, params: dict[str, Any], proposal: Proposal) -> bool:
    raise AssertionError(f"no evaluator expected, got {name}")


def decide(document: dict[str, Any], proposal: Proposal, call: Any = _no_evaluators) -> Route:
    return route(CompiledPolicy.compile(parse_policy(document)), proposal, call)


@pytest.mark.parametrize(
    ("proposal", "outcome", "reason"),
    [
        (
            Proposal("read_ticket", weight=0.1, score=0.9),
            Outcome.ALLOWED,
            "tier.auto_approve:read_ticket",
        ),
        (Proposal("read_ticket", weight=0.9, score=0.9), Outcome.NEEDS_APPROVAL, "risk.max_weight"),
        (Proposal("read_ticket", weight=0.1, score=0.2), Outcome.NEEDS_APPROVAL, "risk.min_score"),
        (Proposal("read_ticket"), Outcome.NEEDS_APPROVAL, "risk.max_weight"),
        (
            Proposal("issue_refund", weight=0.1, score=1.0),
            Outcome.NEEDS_APPROVAL,
            "tier.always_approve:issue_refund",
        ),
        (Proposal("close_account"), Outcome.STEER, "tier.steer:close_account"),
        (Proposal("drop_database"), Outcome.DENIED, "tier.blocked:drop_database"),
        (Proposal("delete_user"), Outcome.DENIED, "tier.blocked:delete_*"),
        (
            Proposal("log_note", weight=1.0, score=0.0),
            Outcome.ALLOWED,
            "tier.unrestricted:log_note",
        ),
        (Proposal("send_rocket"), Outcome.DENIED, "policy.default_deny"),
        (
            Proposal("read_ticket", resource="prod/db", weight=0.1, score=0.9),
            Outcome.DENIED,
            "assets.out_of_scope",
        ),
    ],
)
def test_routing_by_tier_risk_and_assets(proposal: Proposal, outcome: Outcome, reason: str) -> None:
    decided = decide(SUPPORT_BOT, proposal)
    assert (decided.outcome, decided.reason) == (outcome, reason)


def test_steer_carries_guidance_and_default_can_allow_or_approve() -> None:
    assert str(decide(SUPPORT_BOT, Proposal("close_account")).guidance).startswith("Ask the")
    assert decide({"name": "p", "default": "allow"}, Proposal("x")).outcome is Outcome.ALLOWED
    approve = decide({"name": "p", "default": "approve"}, Proposal("x"))
    assert (approve.outcome, approve.reason) == (Outcome.NEEDS_APPROVAL, "policy.default_approve")


def test_asset_allow_list_scopes_resources() -> None:
    policy = {
        "name": "p",
        "default": "allow",
        "assets": {"allow": ["tickets/*"], "deny": ["tickets/secret*"]},
    }
    assert decide(policy, Proposal("x", resource="tickets/1")).outcome is Outcome.ALLOWED
    assert (
        decide(policy, Proposal("x", resource="tickets/secret-1")).reason == "assets.out_of_scope"
    )
    assert decide(policy, Proposal("x", resource="users/1")).reason == "assets.out_of_scope"
    assert decide(policy, Proposal("x")).reason == "assets.out_of_scope"


RULES: dict[str, Any] = {
    "name": "rules",
    "default": "allow",
    "rules": [
        {
            "name": "big-refunds",
            "when": {
                "all": [
                    {"field": "action", "op": "eq", "value": "refund"},
                    {
                        "any": [
                            {"field": "args.amount", "op": "gt", "value": 100},
                            {"not": {"field": "args.customer.verified", "op": "eq", "value": True}},
                        ]
                    },
                ]
            },
            "outcome": "approve",
        },
        {"name": "risky", "when": {"field": "risk", "op": "ge", "value": 0.5}, "outcome": "deny"},
        {
            "name": "emails",
            "when": {"field": "resource", "op": "matches", "value": "mailto:*"},
            "outcome": "steer",
            "guidance": "Draft it; a person sends it.",
        },
        {
            "name": "expensive",
            "when": {"field": "cost", "op": "gt", "value": "2.5"},
            "outcome": "deny",
        },
    ],
}


@pytest.mark.parametrize(
    ("proposal", "reason"),
    [
        (
            Proposal("refund", args={"amount": 500, "customer": {"verified": True}}),
            "rule:big-refunds",
        ),
        (
            Proposal("refund", args={"amount": 5, "customer": {"verified": False}}),
            "rule:big-refunds",
        ),
        (Proposal("refund", args={"amount": 5}), "rule:big-refunds"),
        (
            Proposal("refund", args={"amount": 5, "customer": {"verified": True}}),
            "policy.default_allow",
        ),
        (Proposal("x", weight=0.9, score=0.1), "rule:risky"),
        (Proposal("x", weight=0.9, score=0.9), "policy.default_allow"),
        (Proposal("x", resource="mailto:a@b"), "rule:emails"),
        (Proposal("x", cost=Decimal("2.51")), "rule:expensive"),
        (Proposal("x", cost=Decimal("2.5")), "policy.default_allow"),
    ],
)
def test_condition_trees(proposal: Proposal, reason: str) -> None:
    assert decide(RULES, proposal).reason == reason


def test_blocked_beats_rules_and_rules_beat_tiers() -> None:
    policy = {
        "name": "p",
        "tiers": {"blocked": ["x"], "auto_approve": ["y"]},
        "rules": [
            {"name": "all", "when": {"field": "action", "op": "exists"}, "outcome": "approve"}
        ],
    }
    assert decide(policy, Proposal("x")).reason == "tier.blocked:x"
    assert decide(policy, Proposal("y", weight=0, score=1)).reason == "rule:all"


def test_evaluators_decide_and_their_failures_surface() -> None:
    policy = {
        "name": "p",
        "default": "allow",
        "rules": [
            {
                "name": "pii",
                "when": {"evaluator": "pii", "params": {"field": "body"}},
                "outcome": "deny",
            }
        ],
    }
    seen: list[tuple[str, dict[str, Any]]] = []

    def call(name: str, params: dict[str, Any], proposal: Proposal) -> bool:
        seen.append((name, params))
        return "ssn" in str(proposal.args.get("body"))

    assert decide(policy, Proposal("send", args={"body": "my ssn is"}), call).reason == "rule:pii"
    assert decide(policy, Proposal("send", args={"body": "hello"}), call).outcome is Outcome.ALLOWED
    assert seen[0] == ("pii", {"field": "body"})

    def failing(name: str, params: dict[str, Any], proposal: Proposal) -> bool:
        raise EvaluatorFailure("evaluator.error:pii")

    with pytest.raises(EvaluatorFailure):
        decide(policy, Proposal("send"), failing)


def test_evaluator_registry_times_out_and_catches_errors() -> None:
    registry = EvaluatorRegistry()

    def slow(params: dict[str, Any], proposal: Proposal) -> bool:
        time.sleep(1)
        return True

    def broken(params: dict[str, Any], proposal: Proposal) -> bool:
        raise ZeroDivisionError

    def odd(params: dict[str, Any], proposal: Proposal) -> Any:
        return "yes"

    registry.register("slow", slow)
    registry.register("broken", broken)
    registry.register("odd", odd)
    registry.register("fine", lambda params, proposal: proposal.action == "a")
    with pytest.raises(EvaluatorFailure, match=r"evaluator\.timeout:slow"):
        registry.call("slow", {}, Proposal("a"), timeout=0.05)
    with pytest.raises(EvaluatorFailure, match=r"evaluator\.error:broken"):
        registry.call("broken", {}, Proposal("a"), timeout=1)
    with pytest.raises(EvaluatorFailure, match=r"evaluator\.bad_result:odd"):
        registry.call("odd", {}, Proposal("a"), timeout=1)
    assert registry.call("fine", {}, Proposal("a"), timeout=1) is True
    with pytest.raises(PolicyError, match="unknown evaluator 'nope'"):
        registry.require({"nope"})
    registry.close()


def _nest(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"field": "action", "op": "eq", "value": "x"}
    for _ in range(levels - 1):
        node = {"not": node}
    return node


def test_condition_depth_is_limited() -> None:
    parse_policy({"name": "p", "rules": [{"name": "ok", "when": _nest(8), "outcome": "deny"}]})
    with pytest.raises(PolicyError, match="deeper than 8"):
        parse_policy(
            {"name": "p", "rules": [{"name": "deep", "when": _nest(9), "outcome": "deny"}]}
        )


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"name": "p", "mode": "sometimes"}, "mode"),
        ({"name": "p", "tiers": {"auto_approve": ["a"], "blocked": ["a"]}}, "listed in both"),
        ({"name": "p", "risk": {"max_weight": 2}}, "risk.max_weight"),
        ({"name": "p", "tierz": {}}, "tierz"),
        (
            {
                "name": "p",
                "rules": [
                    {"name": "r", "when": {"field": "colour", "op": "eq"}, "outcome": "deny"}
                ],
            },
            "unknown field 'colour'",
        ),
        (
            {
                "name": "p",
                "rules": [
                    {"name": "r", "when": {"field": "action", "op": "eq"}, "outcome": "steer"}
                ],
            },
            "needs guidance",
        ),
        ({"name": "p", "sequences": [{"limit": "x[ab]", "max": 1, "per": "1h"}]}, "wildcards only"),
        ({"name": "p", "sequences": [{"deny": "send_email"}]}, "after"),
        ({"name": "p", "capabilities": {"pay": "bad name!"}}, "not a valid name"),
        ({"name": "p", "approval_timeout": "soon"}, "not a duration"),
        ({"name": "bad name!"}, "name"),
        ({"mode": "live"}, "name"),
    ],
)
def test_invalid_documents_name_the_field(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        parse_policy(document)


def test_yaml_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: support-bot\ntiers:\n  auto_approve: [read_ticket]\nrisk:\n  max_weight: 7\n"
    )
    with pytest.raises(PolicyError) as raised:
        load_policy_file(path)
    assert raised.value.problems[0][0] == f"{path}:5: risk.max_weight"
    assert f"{path}:5: risk.max_weight" in str(raised.value)


def test_yaml_and_json_round_trip_to_the_same_digest(tmp_path: Path) -> None:
    document = parse_policy({**SUPPORT_BOT, "rules": RULES["rules"]})
    yaml_path, json_path = tmp_path / "p.yaml", tmp_path / "p.json"
    yaml_path.write_text(dump_policy(document, "yaml"))
    json_path.write_text(dump_policy(document, "json"))
    from_yaml, from_json = load_policy_file(yaml_path), load_policy_file(json_path)
    assert from_yaml == document == from_json
    assert from_yaml.digest == document.digest == from_json.digest
    assert json.loads(json_path.read_text())["approval_timeout"] == 3600
    assert isinstance(document.rules[0].when, conditions.AllOf)


def test_same_meaning_same_digest_different_meaning_different_digest() -> None:
    a = parse_policy({"name": "p", "tiers": {"blocked": ["x"]}})
    b = parse_policy({"tiers": {"blocked": ["x"]}, "name": "p", "mode": "live"})
    c = parse_policy({"name": "p", "tiers": {"blocked": ["y"]}})
    assert a.digest == b.digest != c.digest
    assert isinstance(a, PolicyDocument)


def test_session_limits_are_exact_round_trip_and_leave_old_digests_alone(tmp_path: Path) -> None:
    plain = parse_policy({"name": "p", "tiers": {"blocked": ["x"]}})
    assert "limits" not in plain.to_json_data()  # digests of policies without limits unchanged
    capped = parse_policy(
        {"name": "p", "tiers": {"blocked": ["x"]}, "limits": {"max_cost": "5", "max_actions": 9}}
    )
    assert capped.digest != plain.digest
    assert capped.limits.complete
    assert capped.limits.excess(Decimal("5"), 9) is None
    assert capped.limits.excess(Decimal("5.000000001"), 1) == (
        "max_cost",
        "5.000000001 is above the policy's limit of 5.000000000",
    )
    assert capped.limits.excess(Decimal(0), 10) == (
        "max_actions",
        "10 is above the policy's limit of 9",
    )
    path = tmp_path / "capped.yaml"
    path.write_text(dump_policy(capped, "yaml"))
    assert load_policy_file(path) == capped
    assert not parse_policy({"name": "p", "limits": {"max_cost": "1"}}).limits.complete
    for bad in ({"max_cost": 0.5}, {"max_cost": "-1"}, {"max_actions": -1}, {"max_time": 3}):
        with pytest.raises(PolicyError, match="limits"):
            parse_policy({"name": "p", "limits": bad})
