"""Condition trees: all / any / not over proposal fields and named evaluators."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_control_plane.rules.proposal import Proposal

MAX_DEPTH = 8
SCALAR_FIELDS = ("action", "resource", "weight", "score", "risk", "cost")
_MISSING = object()


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AllOf(_Node):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Node):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Node):
    not_: Condition = Field(alias="not")


class Compare(_Node):
    """``{"field": "weight", "op": "gt", "value": 0.5}``; ``args.<path>`` reads arguments."""

    field: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "matches", "exists"]
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value in SCALAR_FIELDS or (value.startswith("args.") and len(value) > 5):
            return value
        raise ValueError(
            f"unknown field {value!r}: use one of {', '.join(SCALAR_FIELDS)} or args.<path>"
        )


class Evaluate(_Node):
    """``{"evaluator": "pii_check", "params": {...}}``: a named plugin decides."""

    evaluator: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


Condition = Annotated[AllOf | AnyOf | NotOf | Compare | Evaluate, Field(union_mode="smart")]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()

EvaluatorCall = Callable[[str, dict[str, Any], Proposal], bool]


def depth(node: Any) -> int:
    if isinstance(node, AllOf):
        return 1 + max(depth(child) for child in node.all)
    if isinstance(node, AnyOf):
        return 1 + max(depth(child) for child in node.any)
    if isinstance(node, NotOf):
        return 1 + depth(node.not_)
    return 1


def evaluator_names(node: Any) -> set[str]:
    if isinstance(node, AllOf | AnyOf):
        children = node.all if isinstance(node, AllOf) else node.any
        return set().union(*(evaluator_names(child) for child in children))
    if isinstance(node, NotOf):
        return evaluator_names(node.not_)
    if isinstance(node, Evaluate):
        return {node.evaluator}
    return set()


def _read(proposal: Proposal, field: str) -> Any:
    if field.startswith("args."):
        current: Any = proposal.args
        for part in field[5:].split("."):
            if not isinstance(current, dict) or part not in current:
                return _MISSING
            current = current[part]
        return current
    value = getattr(proposal, field)
    return _MISSING if value is None else value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _compare(node: Compare, proposal: Proposal) -> bool:
    actual = _read(proposal, node.field)
    if node.op == "exists":
        return (actual is not _MISSING) == (node.value is not False)
    if actual is _MISSING:
        return False
    if node.op in ("eq", "ne"):
        left, right = _number(actual), _number(node.value)
        equal = left == right if left is not None and right is not None else actual == node.value
        return equal if node.op == "eq" else not equal
    if node.op in ("in", "not_in"):
        inside = isinstance(node.value, list) and actual in node.value
        return inside if node.op == "in" else not inside
    if node.op == "matches":
        return isinstance(actual, str) and fnmatch.fnmatchcase(actual, str(node.value))
    left, right = _number(actual), _number(node.value)
    if left is None or right is None:
        return False
    return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[
        node.op
    ]


def evaluate(node: Any, proposal: Proposal, call_evaluator: EvaluatorCall) -> bool:
    """Evaluate a condition tree. Evaluator failures propagate: the caller decides (deny)."""
    if isinstance(node, AllOf):
        return all(evaluate(child, proposal, call_evaluator) for child in node.all)
    if isinstance(node, AnyOf):
        return any(evaluate(child, proposal, call_evaluator) for child in node.any)
    if isinstance(node, NotOf):
        return not evaluate(node.not_, proposal, call_evaluator)
    if isinstance(node, Evaluate):
        return call_evaluator(node.evaluator, node.params, proposal)
    return _compare(node, proposal)
