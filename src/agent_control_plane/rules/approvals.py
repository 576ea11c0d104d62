"""Approval rules: what a ticket covers and how scopes are limited (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules import resources, validation
from agent_control_plane.rules.canonical import digest
from agent_control_plane.rules.proposal import Proposal

SCOPES = ("once", "session")
DEFAULT_TIMEOUT = timedelta(hours=1)


def proposal_digest(proposal: Proposal) -> str:
    """What a "once" approval is bound to: the exact action, resource and arguments."""
    return digest([proposal.action, proposal.resource, proposal.args])


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """Limits of a session-scoped approval. None means no limit; 0 means none allowed."""

    resources: list[str] | None = None
    max_cost: Decimal | None = None
    max_count: int | None = None
    expires_at: datetime | None = None

    @classmethod
    def parse(cls, limits: dict[str, Any] | None) -> ScopeLimits:
        limits = dict(limits or {})
        unknown = set(limits) - {"resources", "max_cost", "max_count", "expires_at"}
        if unknown:
            raise InvalidInputError("scope_limits", f"unknown keys {sorted(unknown)}")
        patterns = limits.get("resources")
        if patterns is not None and (
            not isinstance(patterns, list) or not all(isinstance(r, str) for r in patterns)
        ):
            raise InvalidInputError("scope_limits", "resources must be a list of strings")
        max_cost = limits.get("max_cost")
        max_count = limits.get("max_count")
        return cls(
            resources=None if patterns is None else [_canonical_pattern(p) for p in patterns],
            max_cost=None
            if max_cost is None
            else validation.money(max_cost, "scope_limits.max_cost"),
            max_count=None
            if max_count is None
            else validation.counter(max_count, "scope_limits.max_count"),
            expires_at=validation.aware(limits.get("expires_at"), "scope_limits.expires_at"),
        )


def _canonical_pattern(pattern: str) -> str:
    try:
        return resources.canonical(pattern)
    except resources.InvalidResource as exc:
        raise InvalidInputError(
            "scope_limits", f"resource pattern {pattern!r} can never match: {exc}"
        ) from None


def covers_resource(patterns: list[str] | None, resource: str | None) -> bool:
    """Whether a session scope's resource patterns admit a canonical ``resource`` (None:
    any resource), in the exact letter case."""
    if patterns is None:
        return True
    return resource is not None and any(resources.matches(resource, p) for p in patterns)
