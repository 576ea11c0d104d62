"""Policy routing: which outcome a proposal gets, and the rule that decided it."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent_control_plane.rules import conditions, resources
from agent_control_plane.rules.policy import PolicyDocument
from agent_control_plane.rules.proposal import Proposal


class Outcome(StrEnum):
    ALLOWED = "allowed"
    NEEDS_APPROVAL = "needs_approval"
    STEER = "steer"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Route:
    outcome: Outcome
    reason: str
    guidance: str | None = None


class EvaluatorFailure(Exception):
    """An evaluator raised or timed out; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_RULE_OUTCOMES = {
    "allow": Outcome.ALLOWED,
    "deny": Outcome.DENIED,
    "approve": Outcome.NEEDS_APPROVAL,
    "steer": Outcome.STEER,
}
_DEFAULT_OUTCOMES = {
    "deny": Outcome.DENIED,
    "allow": Outcome.ALLOWED,
    "approve": Outcome.NEEDS_APPROVAL,
}


class _Tier:
    """Exact names in a set, patterns in a list: the common case is one hash lookup."""

    def __init__(self, names: list[str] | dict[str, str]) -> None:
        self.exact = {n: n for n in names if not any(c in n for c in "*?[")}
        self.patterns = [n for n in names if n not in self.exact]

    def match(self, action: str) -> str | None:
        if action in self.exact:
            return action
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(action, pattern):
                return pattern
        return None


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy ready to route: tiers indexed once, shared by every decision."""

    document: PolicyDocument
    blocked: _Tier
    always_approve: _Tier
    auto_approve: _Tier
    steer: _Tier
    unrestricted: _Tier
    # The assets patterns in canonical form, the form every resource is compared in.
    allowed_resources: tuple[str, ...] = ()
    denied_resources: tuple[str, ...] = ()

    @classmethod
    def compile(cls, document: PolicyDocument) -> CompiledPolicy:
        tiers = document.tiers
        return cls(
            document=document,
            blocked=_Tier(tiers.blocked),
            always_approve=_Tier(tiers.always_approve),
            auto_approve=_Tier(tiers.auto_approve),
            steer=_Tier(tiers.steer),
            unrestricted=_Tier(tiers.unrestricted),
            allowed_resources=tuple(map(resources.canonical, document.assets.allow)),
            denied_resources=tuple(map(resources.canonical, document.assets.deny)),
        )

    @property
    def dry_run(self) -> bool:
        return self.document.mode == "dry_run"


CallEvaluator = Callable[[str, dict[str, Any], Proposal], bool]


def _resource_allowed(policy: CompiledPolicy, resource: str | None) -> bool:
    """Whether the policy's assets admit a canonical ``resource``: deny patterns match in
    any letter case, allow patterns exactly."""
    allowed = policy.allowed_resources
    if resource is None:
        return not allowed
    if any(resources.matches(resource, p, any_case=True) for p in policy.denied_resources):
        return False
    return not allowed or any(resources.matches(resource, p) for p in allowed)


def route(policy: CompiledPolicy, proposal: Proposal, call_evaluator: CallEvaluator) -> Route:
    """Route a proposal through the policy.

    Order: blocked tier, asset scope, rules (first match), always_approve, steer,
    auto_approve (with risk limits), unrestricted, then the policy's default.
    Raises EvaluatorFailure when a rule's evaluator fails; the caller denies.
    """
    document = policy.document
    action = proposal.action
    if (hit := policy.blocked.match(action)) is not None:
        return Route(Outcome.DENIED, f"tier.blocked:{hit}")
    if not _resource_allowed(policy, proposal.resource):
        return Route(Outcome.DENIED, "assets.out_of_scope")
    for rule in document.rules:
        if conditions.evaluate(rule.when, proposal, call_evaluator):
            return Route(_RULE_OUTCOMES[rule.outcome], f"rule:{rule.name}", rule.guidance)
    if (hit := policy.always_approve.match(action)) is not None:
        return Route(Outcome.NEEDS_APPROVAL, f"tier.always_approve:{hit}")
    if (hit := policy.steer.match(action)) is not None:
        return Route(Outcome.STEER, f"tier.steer:{hit}", document.tiers.steer[hit])
    if (hit := policy.auto_approve.match(action)) is not None:
        risk = document.risk
        # A limit the proposal cannot be checked against fails closed: a person decides.
        if risk.max_weight is not None and (
            proposal.weight is None or proposal.weight > risk.max_weight
        ):
            return Route(Outcome.NEEDS_APPROVAL, "risk.max_weight")
        if risk.min_score is not None and (
            proposal.score is None or proposal.score < risk.min_score
        ):
            return Route(Outcome.NEEDS_APPROVAL, "risk.min_score")
        return Route(Outcome.ALLOWED, f"tier.auto_approve:{hit}")
    if (hit := policy.unrestricted.match(action)) is not None:
        return Route(Outcome.ALLOWED, f"tier.unrestricted:{hit}")
    return Route(_DEFAULT_OUTCOMES[document.default], f"policy.default_{document.default}")
