"""Input checks that run before anything is written; each error names the argument."""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules import resources
from agent_control_plane.rules.canonical import json_document
from agent_control_plane.schema.tables import ID_LENGTH, KEY_LENGTH, RESOURCE_LENGTH
from agent_control_plane.schema.types import to_money

MAX_COUNTER = 2**62
_CONTROL_RE = re.compile(r"[\x00-\x1f]")


def text(value: Any, field: str, *, limit: int = ID_LENGTH, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(field, "must be a non-empty string")
    if len(value) > limit:
        raise InvalidInputError(field, f"is {len(value)} characters; the limit is {limit}")
    if _CONTROL_RE.search(value):
        raise InvalidInputError(field, "must not contain control characters")
    return value


def required_text(value: Any, field: str, *, limit: int = ID_LENGTH) -> str:
    result = text(value, field, limit=limit)
    assert result is not None
    return result


def money(value: Any, field: str) -> Decimal:
    try:
        amount = to_money(value)
    except ValueError as exc:
        raise InvalidInputError(field, str(exc)) from exc
    if amount < 0:
        raise InvalidInputError(field, f"must not be negative (got {amount})")
    return amount


def counter(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, "must be an integer")
    if not 0 <= value <= MAX_COUNTER:
        raise InvalidInputError(field, f"must be between 0 and {MAX_COUNTER}")
    return value


def unit_interval(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(field, "must be a number between 0 and 1")
    result = float(value)
    if not math.isfinite(result) or not 0.0 <= result <= 1.0:
        raise InvalidInputError(field, f"must be between 0 and 1 (got {value})")
    return result


def aware(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(field, "must be an aware datetime (with a time zone)")
    return value


def session_id(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError("session_id", f"not a session id: {value!r}") from None


def document(value: Any, field: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(field, "must be a dict")
    return json_document(value, field=field)


def idempotency_key(value: Any) -> str | None:
    return text(value, "idempotency_key", limit=KEY_LENGTH, optional=True)


def resource(value: Any) -> str | None:
    return text(value, "resource", limit=RESOURCE_LENGTH, optional=True)


def resource_root(value: Any) -> str | None:
    """An absolute folder path in canonical form (None stays None)."""
    root = text(value, "resource_root", limit=RESOURCE_LENGTH, optional=True)
    if root is None:
        return None
    try:
        return resources.canonical_root(root)
    except resources.InvalidResource as exc:
        raise InvalidInputError("resource_root", str(exc)) from None
