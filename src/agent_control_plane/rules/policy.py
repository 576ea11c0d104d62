"""Policy documents: their shape, validation, and their YAML or JSON text (no I/O).

Reading a policy file is ``agent_control_plane.loading.load_policy_file``.
"""

from __future__ import annotations

import json
import re
import string
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent_control_plane.errors import PolicyError
from agent_control_plane.rules import conditions, resources
from agent_control_plane.rules.canonical import (
    MAX_DOCUMENT_DEPTH,
    canonical_json,
    digest,
    nesting_exceeds,
)
from agent_control_plane.rules.durations import parse_duration
from agent_control_plane.rules.money import to_money

_PATTERN_RE = re.compile(r"^[A-Za-z0-9_.:/*?\[\]-]{1,200}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def _pattern(value: str) -> str:
    if not _PATTERN_RE.match(value):
        raise ValueError(
            f"{value!r} is not an action name or pattern (letters, digits, _ . : / - and * ? [ ])"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tiers(_Model):
    blocked: list[str] = Field(default_factory=list)
    always_approve: list[str] = Field(default_factory=list)
    auto_approve: list[str] = Field(default_factory=list)
    steer: dict[str, str] = Field(default_factory=dict)
    unrestricted: list[str] = Field(default_factory=list)

    @field_validator("blocked", "always_approve", "auto_approve", "unrestricted")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        return [_pattern(v) for v in values]

    @field_validator("steer")
    @classmethod
    def _guidance(cls, values: dict[str, str]) -> dict[str, str]:
        for action, guidance in values.items():
            _pattern(action)
            if not guidance.strip() or len(guidance) > 2000:
                raise ValueError(f"guidance for {action!r} must be 1-2000 characters")
        return values

    @model_validator(mode="after")
    def _each_action_in_one_tier(self) -> Tiers:
        seen: dict[str, str] = {}
        for tier in ("blocked", "always_approve", "auto_approve", "steer", "unrestricted"):
            for action in getattr(self, tier):
                if action in seen:
                    raise ValueError(f"{action!r} is listed in both {seen[action]} and {tier}")
                seen[action] = tier
        return self


class Risk(_Model):
    max_weight: float | None = Field(default=None, ge=0, le=1)
    min_score: float | None = Field(default=None, ge=0, le=1)


class Assets(_Model):
    """Resource patterns the session may touch: ``deny`` wins, empty ``allow`` allows all.

    Patterns are compared in canonical form (see ``rules/resources.py``), as resources are.
    """

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _canonical(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                resources.canonical(value)
            except resources.InvalidResource as exc:
                raise ValueError(f"{value!r} can never match a resource: {exc}") from None
        return values


def _simple_pattern(value: str) -> str:
    _pattern(value)
    if "[" in value or "]" in value:
        raise ValueError(f"{value!r}: sequence rules take * and ? wildcards only")
    return value


class DenyAfter(_Model):
    """``{deny: send_email, after: read_inbox}``: never X once Y was allowed in the session."""

    deny: str
    after: str
    within: timedelta | None = None

    @field_validator("deny", "after")
    @classmethod
    def _patterns(cls, value: str) -> str:
        return _simple_pattern(value)

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)


class Limit(_Model):
    """``{limit: "delete_*", max: 3, per: 1h}``: at most N allowed per period, per session."""

    limit: str
    max: int = Field(ge=0)
    per: timedelta

    @field_validator("limit")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _simple_pattern(value)

    @field_validator("per", mode="before")
    @classmethod
    def _per(cls, value: Any) -> Any:
        return parse_duration(value)


class Rule(_Model):
    """A condition-driven routing rule; the first rule whose condition holds decides."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    when: conditions.Condition
    outcome: Literal["allow", "deny", "approve", "steer"]
    guidance: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _steer_has_guidance(self) -> Rule:
        if self.outcome == "steer" and not self.guidance:
            raise ValueError("a steer rule needs guidance")
        if conditions.depth(self.when) > conditions.MAX_DEPTH:
            raise ValueError(f"condition nested deeper than {conditions.MAX_DEPTH} levels")
        return self


_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_./:-]{1,128}$")
_ACTION_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")


class ToolRisk(_Model):
    """The risk the operator assigns to a tool; an agent's arguments never change it."""

    weight: float | None = Field(default=None, ge=0, le=1)
    score: float | None = Field(default=None, ge=0, le=1)


class ToolMapping(_Model):
    """How an MCP tool call is governed: ``{action: fs.read, risk: {weight: 0.1},
    cost: "0.001", resource: "file:{path}"}``. ``resource`` is a template filled from
    the call's arguments (``{path}`` is the ``path`` argument)."""

    action: str
    risk: ToolRisk = Field(default_factory=ToolRisk)
    cost: Decimal = Decimal(0)
    resource: str | None = Field(default=None, min_length=1, max_length=500)
    # The folder the MCP server serves: absolute paths under it are made relative to it
    # (so they match the relative asset patterns), paths outside it are denied.
    root: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if not _ACTION_RE.match(value):
            raise ValueError(
                f"{value!r} is not an action name (letters, digits, _ . : / -; no wildcards)"
            )
        return value

    @field_validator("cost", mode="before")
    @classmethod
    def _cost(cls, value: Any) -> Decimal:
        return _money_field(value)

    @field_validator("resource")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                resources.canonical_root(value)
            except resources.InvalidResource as exc:
                raise ValueError(f"root {value!r}: {exc}") from None
        return value


def _money_field(value: Any) -> Decimal:
    """A policy amount: exact (a string or int, never a float), not negative."""
    if isinstance(value, float):
        raise ValueError('write the amount as a string, e.g. "0.001" (floats are inexact)')
    try:
        amount = to_money(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if amount < 0:
        raise ValueError(f"must not be negative (got {amount})")
    return amount


class SessionLimits(_Model):
    """The most a session under this policy may be given (``limits: {max_cost: "5.00",
    max_actions: 100}``): a ceiling set by whoever wrote the policy on what an opener, an
    agent's API key say, may ask for."""

    max_cost: Decimal | None = None
    max_actions: int | None = Field(default=None, ge=0)

    @field_validator("max_cost", mode="before")
    @classmethod
    def _cost(cls, value: Any) -> Decimal | None:
        return None if value is None else _money_field(value)

    @property
    def complete(self) -> bool:
        return self.max_cost is not None and self.max_actions is not None

    def excess(self, max_cost: Decimal, max_actions: int) -> tuple[str, str] | None:
        """(field, message) for the first asked budget above its limit, else None."""
        if self.max_cost is not None and max_cost > self.max_cost:
            return "max_cost", f"{max_cost} is above the policy's limit of {self.max_cost}"
        if self.max_actions is not None and max_actions > self.max_actions:
            return "max_actions", f"{max_actions} is above the policy's limit of {self.max_actions}"
        return None


def template_fields(template: str) -> list[str]:
    """The argument names a resource template uses; ValueError unless each is plain."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"resource template {template!r}: {exc}") from None
    names = []
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(
                f"resource template {template!r}: {{{name}}} must name one argument, like {{path}}"
            )
        names.append(name)
    return names


class PolicyDocument(_Model):
    """A governance policy; every field is in docs/reference/policy.md."""

    name: str
    mode: Literal["live", "dry_run"] = "live"
    default: Literal["deny", "allow", "approve"] = "deny"
    tiers: Tiers = Field(default_factory=Tiers)
    risk: Risk = Field(default_factory=Risk)
    assets: Assets = Field(default_factory=Assets)
    rules: list[Rule] = Field(default_factory=list, max_length=200)
    approval_timeout: timedelta | None = None
    evaluator_timeout: timedelta = timedelta(seconds=2)
    sequences: list[DenyAfter | Limit] = Field(default_factory=list, max_length=100)
    steer_retries: int | None = Field(default=3, ge=0)
    capabilities: dict[str, str] = Field(default_factory=dict)
    tools: dict[str, ToolMapping] = Field(default_factory=dict, max_length=1000)
    limits: SessionLimits = Field(default_factory=SessionLimits)

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, values: dict[str, ToolMapping]) -> dict[str, ToolMapping]:
        for name in values:
            if not _TOOL_NAME_RE.match(name):
                raise ValueError(
                    f"{name!r} is not an MCP tool name (1-128 letters, digits, _ . / : -)"
                )
        return values

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, values: dict[str, str]) -> dict[str, str]:
        for action, capability in values.items():
            _pattern(action)
            if not _NAME_RE.match(capability):
                raise ValueError(f"capability {capability!r} is not a valid name")
        return values

    @model_validator(mode="after")
    def _patterns_relative_to_roots(self) -> PolicyDocument:
        # Under a root, resources are relative: an absolute pattern there would never match.
        roots = {resources.canonical_root(m.root) for m in self.tools.values() if m.root}
        for pattern in (*self.assets.allow, *self.assets.deny):
            for root in roots:
                relative = resources.relative_to_root(resources.canonical(pattern), root)
                if relative is not None:
                    raise ValueError(
                        f"assets pattern {pattern!r} is under the tools' root {root}: "
                        f"write it relative to the root, as {relative!r}"
                    )
        return self

    @property
    def needs_history(self) -> bool:
        """Whether an allowed action needs the session's history or its agent (read under
        the session row lock) before it may be charged."""
        return bool(self.sequences or self.capabilities)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("1-200 letters, digits, _ . : -, starting with a letter or digit")
        return value

    @field_validator("approval_timeout", "evaluator_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    def evaluators(self) -> set[str]:
        return set().union(*(conditions.evaluator_names(rule.when) for rule in self.rules))

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data["name"] = self.name
        for key in ("approval_timeout", "evaluator_timeout"):
            value = getattr(self, key)
            if key in data and value is not None:
                data[key] = value.total_seconds()
        for rule, encoded in zip(self.sequences, data.get("sequences", []), strict=True):
            for key in ("within", "per"):
                value = getattr(rule, key, None)
                if value is not None:
                    encoded[key] = value.total_seconds()
        return data

    @property
    def digest(self) -> str:
        return digest(self.to_json_data())

    def canonical(self) -> str:
        return canonical_json(self.to_json_data())


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(document)"


def parse_policy(
    data: Any, *, source: str = "policy", lines: dict[str, int] | None = None
) -> PolicyDocument:
    """Validate a policy document; errors name the field (and line, for files)."""
    if isinstance(data, PolicyDocument):
        return data
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a mapping, not {type(data).__name__}")
    if nesting_exceeds(data, MAX_DOCUMENT_DEPTH):
        raise PolicyError(
            f"{source}: nests objects and arrays more than {MAX_DOCUMENT_DEPTH} levels deep"
        )
    try:
        document = PolicyDocument.model_validate(data)
        # Stored as JSON: a lone surrogate anywhere (pydantic lets one through in a
        # free-form value) could never be written.
        document.canonical().encode()
        return document
    except UnicodeEncodeError:
        raise PolicyError(
            f"{source}: must not contain lone surrogates (U+D800 to U+DFFF)"
        ) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = _location(tuple(p for p in error["loc"] if not _is_union_tag(p)))
            line = _line_for(where, lines or {})
            place = f"{source}:{line}: {where}" if line else f"{source}: {where}"
            problems.append((place, error["msg"]))
        listing = "; ".join(f"{place}: {message}" for place, message in problems)
        raise PolicyError(
            f"invalid policy ({len(problems)} problem(s)): {listing}", problems
        ) from None


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and part in ("AllOf", "AnyOf", "NotOf", "Compare", "Evaluate")


def _line_for(where: str, lines: dict[str, int]) -> int | None:
    parts = where.split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None


def dump_policy(document: PolicyDocument, fmt: Literal["yaml", "json"] = "yaml") -> str:
    data = document.to_json_data()
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False))


def __getattr__(name: str) -> Any:
    # The old import path of load_policy_file, which reads a file and so moved out of the
    # rules: imported on first use, importing the rules never reads or imports I/O code.
    if name == "load_policy_file":
        from agent_control_plane.loading import load_policy_file

        return load_policy_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
