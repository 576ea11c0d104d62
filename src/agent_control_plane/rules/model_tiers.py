"""Model governance: which model tiers each action tier may use, with per-identity overrides."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules.tokens import IDENTITY_FIELDS, Identity

DEFAULT_ACTION_TIER = "default"


@dataclass(frozen=True)
class Override:
    identity: dict[str, str]
    tiers: tuple[str, ...]

    def covers(self, identity: Identity) -> bool:
        return all(getattr(identity, name) == value for name, value in self.identity.items())


@dataclass(frozen=True)
class ModelPolicy:
    """``tiers`` maps a model tier to model names or * patterns; ``action_tiers`` maps an
    action tier (auto_approve, always_approve, ..., or "default") to the model tiers it may
    use; the first ``override`` whose identity fields all match replaces that list."""

    tiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    action_tiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()

    @classmethod
    def of(cls, source: ModelPolicy | dict[str, Any] | None) -> ModelPolicy | None:
        if source is None or isinstance(source, ModelPolicy):
            return source
        unknown = set(source) - {"tiers", "action_tiers", "overrides"}
        if unknown:
            raise InvalidInputError("model_policy", f"unknown keys {sorted(unknown)}")
        tiers = {
            name: tuple(_names(models, f"tiers.{name}"))
            for name, models in dict(source.get("tiers", {})).items()
        }
        action_tiers = {
            name: tuple(_names(allowed, f"action_tiers.{name}"))
            for name, allowed in dict(source.get("action_tiers", {})).items()
        }
        overrides = []
        for index, entry in enumerate(source.get("overrides", [])):
            identity = dict(entry.get("identity", {}))
            if not identity or set(identity) - set(IDENTITY_FIELDS):
                raise InvalidInputError(
                    f"overrides.{index}.identity", f"name some of {', '.join(IDENTITY_FIELDS)}"
                )
            overrides.append(
                Override(
                    identity, tuple(_names(entry.get("tiers", []), f"overrides.{index}.tiers"))
                )
            )
        for where, names in [
            *action_tiers.items(),
            *((f"override {o.identity}", o.tiers) for o in overrides),
        ]:
            missing = set(names) - set(tiers)
            if missing:
                raise InvalidInputError(
                    "model_policy", f"{where} names unknown tiers {sorted(missing)}"
                )
        return cls(tiers, action_tiers, tuple(overrides))

    def tier_of(self, model: str) -> str | None:
        for tier, patterns in self.tiers.items():
            if any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns):
                return tier
        return None

    def refusal(self, model: str, identity: Identity, action_tier: str | None) -> str | None:
        """Why ``model`` may not be used for this identity and action tier, or None."""
        tier = self.tier_of(model)
        if tier is None:
            return f"model {model!r} belongs to no model tier"
        override = next((o for o in self.overrides if o.covers(identity)), None)
        if override is not None:
            allowed = override.tiers
        else:
            key = action_tier or DEFAULT_ACTION_TIER
            if key not in self.action_tiers:
                return f"action tier {key!r} may use no model tier"
            allowed = self.action_tiers[key]
        if tier not in allowed:
            return f"model {model!r} is in tier {tier!r}, not allowed here ({', '.join(allowed)})"
        return None


def _names(values: Any, where: str) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise InvalidInputError(where, "must be a list of names")
    return list(values)
