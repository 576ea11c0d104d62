"""Input checks that run before anything is written; each error names the argument."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules import resources
from agent_control_plane.rules.canonical import json_document
from agent_control_plane.rules.durations import MAX_DURATION
from agent_control_plane.rules.lengths import ID_LENGTH, KEY_LENGTH, RESOURCE_LENGTH
from agent_control_plane.rules.money import to_money

MAX_COUNTER = 2**62
MAX_SECONDS = 10**9
_CONTROL_RE = re.compile(r"[\x00-\x1f]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


def text(value: Any, field: str, *, limit: int = ID_LENGTH, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(field, "must be a non-empty string")
    if len(value) > limit:
        raise InvalidInputError(field, f"is {len(value)} characters; the limit is {limit}")
    if _CONTROL_RE.search(value):
        raise InvalidInputError(field, "must not contain control characters")
    unicode_text(value, field)
    return value


def unicode_text(value: str, field: str) -> str:
    """Refuse a lone surrogate: no database can store one (it is not UTF-8)."""
    if not value.isascii() and _SURROGATE_RE.search(value):
        raise InvalidInputError(field, "must not contain lone surrogates (U+D800 to U+DFFF)")
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
    try:
        value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:00-05:00 is a valid datetime whose UTC time is in year 10000.
        raise InvalidInputError(field, f"{value.isoformat()} is out of range in UTC") from None
    return value


def identifier(value: Any, field: str, what: str) -> uuid.UUID:
    """A UUID, or its text: what ACP hands out as the id of a session, policy, ticket…"""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    shown = repr(value) if isinstance(value, str | int) else f"a {type(value).__name__}"
    raise InvalidInputError(field, f"not {what} id: {shown[:80]}")


def session_id(value: Any) -> uuid.UUID:
    return identifier(value, "session_id", "a session")


def seconds(value: Any, field: str) -> float:
    """A wait in seconds: a finite number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(field, "must be a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise InvalidInputError(field, f"must be between 0 and {MAX_SECONDS} seconds")
    return float(value)


def positive_duration(value: Any, field: str) -> timedelta:
    """A positive timedelta no longer than MAX_DURATION (so ``now - value`` never
    overflows)."""
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInputError(field, "must be a positive timedelta")
    if value > MAX_DURATION:
        raise InvalidInputError(field, f"must be at most {MAX_DURATION.days} days")
    return value


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
