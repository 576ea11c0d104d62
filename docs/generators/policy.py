"""The policy document reference, from the model's JSON schema (pydantic)."""

from __future__ import annotations

import json
from typing import Any

from agent_control_plane.rules.policy import PolicyDocument

# What each field does. A field without a line here fails the docs build, so the
# reference can never fall behind the model.
FIELDS = {
    "name": "The policy's name; a changed document with the same name is its next version.",
    "mode": "`live`, or `dry_run`: decide and record exactly as live, but charge nothing.",
    "default": "What an action the policy does not list gets: `deny`, `allow` or `approve`.",
    "tiers": "Actions by tier: exact names or glob patterns, each action in one tier only.",
    "tiers.blocked": "Always denied (`tier.blocked:<action>`), before anything else is checked.",
    "tiers.always_approve": "A person must approve each call (`needs_approval`).",
    "tiers.auto_approve": "Allowed within the `risk` limits; beyond them (or without them) a "
    "person must approve.",
    "tiers.steer": "Action → guidance: the agent is told to do something else first (`steer`).",
    "tiers.unrestricted": "Allowed without risk checks.",
    "risk": "Limits on the caller's `weight` and `score` for `auto_approve` actions.",
    "risk.max_weight": "Above this weight (0 to 1), an `auto_approve` action needs a person.",
    "risk.min_score": "Below this score (0 to 1), an `auto_approve` action needs a person.",
    "assets": "The resources a session may touch, compared in canonical form; `deny` wins, an "
    "empty `allow` allows all.",
    "assets.allow": "Resource patterns allowed.",
    "assets.deny": "Resource patterns denied (matched in any letter case).",
    "rules": "Condition rules; the first whose condition holds decides (`rule:<name>`).",
    "rules[].name": "The rule's name, in the decision's reason.",
    "rules[].when": "A condition: `all`, `any`, `not`, a comparison or an evaluator "
    "(see [conditions](#conditions)).",
    "rules[].outcome": "`allow`, `deny`, `approve` or `steer`.",
    "rules[].guidance": "What a `steer` rule tells the agent (required for `steer`).",
    "approval_timeout": "How long an approval ticket stays pending (default 1 h).",
    "evaluator_timeout": "How long an evaluator may run before the action is denied.",
    "sequences": "Sequence rules over the session's allowed decisions, checked in SQL.",
    "sequences[].deny": "`{deny: X, after: Y}`: never X once Y was allowed in the session.",
    "sequences[].after": "The action (or pattern) that, once allowed, bars `deny`.",
    "sequences[].within": "Only when Y was allowed within this long (e.g. `1h`).",
    "sequences[].limit": "`{limit: X, max: N, per: P}`: at most N allowed X per period.",
    "sequences[].max": "How many `limit` actions may be allowed per period.",
    "sequences[].per": "The period (e.g. `1h`, `1d`).",
    "steer_retries": "A steered action is denied after this many steers (`null`: no limit).",
    "capabilities": "Action → capability the session's agent must hold "
    "(`capability.missing:<name>`).",
    "tools": "MCP tool → how the MCP proxy governs it (action, risk, cost, resource); never "
    "from the agent.",
    "tools.*.action": "The action the tool's calls are governed as.",
    "tools.*.risk": "The risk the operator assigns to the tool.",
    "tools.*.risk.weight": "The call's weight (0 to 1).",
    "tools.*.risk.score": "The call's score (0 to 1).",
    "tools.*.cost": "The estimated cost of one call, an exact decimal string.",
    "tools.*.resource": "A template filled from the call's arguments: `file:{path}`.",
    "tools.*.root": "The folder the MCP server serves: absolute paths under it become relative.",
    "limits": "The most a session under this policy may be given (agent keys need both).",
    "limits.max_cost": "The largest `max_cost` a session may ask for, an exact decimal string.",
    "limits.max_actions": "The largest `max_actions` a session may ask for.",
}
_CONDITIONS = ("AllOf", "AnyOf", "NotOf", "Compare", "Evaluate")


def render() -> str:
    """A table of every field (path, type, default, meaning), the condition forms, and
    the JSON schema itself."""
    schema = PolicyDocument.model_json_schema()
    definitions = schema["$defs"]
    rows: list[tuple[str, str, str, bool]] = []
    _walk(schema, definitions, "", rows)
    missing = [path for path, *_ in rows if path not in FIELDS]
    if missing:
        raise KeyError(f"docs/generators/policy.py: say what these fields do: {missing}")
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for path, kind, default, required in rows:
        shown = "required" if required else default
        lines.append(f"| `{path}` | {kind} | {shown} | {FIELDS[path]} |")
    lines += ["", "## Conditions", "", "A rule's `when` is one of these, nested at most 8 deep:"]
    lines += [""]
    lines += ["| form | fields | meaning |", "|---|---|---|"]
    for name in _CONDITIONS:
        definition = definitions[name]
        fields = ", ".join(f"`{key}`" for key in definition["properties"])
        meaning = definition.get("description", "").replace("\n", " ").replace("``", "`")
        lines.append(f"| {name} | {fields} | {meaning or _COMBINATORS[name]} |")
    ops = definitions["Compare"]["properties"]["op"]["enum"]
    lines += ["", "Comparison operators: " + ", ".join(f"`{op}`" for op in ops) + ".", ""]
    lines += ["## JSON schema", "", '??? note "The policy document\'s JSON schema"', ""]
    lines += ["    ```json"]
    lines += [f"    {line}" for line in json.dumps(schema, indent=2).splitlines()]
    lines += ["    ```", ""]
    return "\n".join(lines)


_COMBINATORS = {
    "AllOf": "Holds when every condition in the list holds.",
    "AnyOf": "Holds when at least one condition in the list holds.",
    "NotOf": "Holds when the condition does not.",
}


def _walk(node: dict[str, Any], defs: dict[str, Any], prefix: str, rows: list[Any]) -> None:
    required = set(node.get("required", ()))
    for key, field in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        rows.append((path, _type(field, defs), _default(field), key in required))
        for target, suffix in _children(field, defs):
            if target in _CONDITIONS:
                continue
            _walk(defs[target], defs, f"{path}{suffix}", rows)


def _children(field: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, str]]:
    """The definitions a field's value is made of, with the path suffix that reaches them."""
    found: list[tuple[str, str]] = []
    if "$ref" in field:
        found.append((_ref(field), "."))
    for option in field.get("anyOf", ()):
        found += _children(option, defs)
    if field.get("type") == "array":
        items = field.get("items", {})
        for option in [items, *items.get("anyOf", ())]:
            if "$ref" in option:
                found.append((_ref(option), "[]."))
    additional = field.get("additionalProperties")
    if isinstance(additional, dict) and "$ref" in additional:
        found.append((_ref(additional), ".*."))
    return found


def _ref(field: dict[str, Any]) -> str:
    return str(field["$ref"]).rsplit("/", 1)[-1]


def _type(field: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in field:
        return "object"
    if "anyOf" in field:
        options = field["anyOf"]
        if all("$ref" in option and _ref(option) in _CONDITIONS for option in options):
            return "condition"
        return " or ".join(dict.fromkeys(_type(option, defs) for option in field["anyOf"]))
    kind = field.get("type", "any")
    if field.get("format") == "duration":
        return "duration (`30s`, `1h`, `7d`, seconds)"
    if kind == "array":
        return f"list of {_type(field.get('items', {}), defs)}"
    if kind == "object" and isinstance(field.get("additionalProperties"), dict):
        return f"map of {_type(field['additionalProperties'], defs)}"
    if "enum" in field:
        return " \\| ".join(f"`{value}`" for value in field["enum"])
    if kind == "string" and field.get("pattern") == "^(?!^[-+.]*$)[+-]?0*\\d*\\.?\\d*$":
        return "decimal"
    return str(kind)


def _default(field: dict[str, Any]) -> str:
    if "default" not in field:
        return "—"
    return f"`{json.dumps(field['default'])}`"
