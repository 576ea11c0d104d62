"""Canonical JSON and digests: one spelling of a document, whatever produced it."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

MAX_DOCUMENT_BYTES = 64 * 1024
# How deeply a caller's document (args, metadata, payload, result, context, policy) may
# nest objects and arrays. MariaDB refuses JSON nested more than 32 deep, and ACP stores
# a caller's document inside records of its own (an event's payload, an idempotency
# record) a few levels down; 20 leaves room for that on every database alike.
MAX_DOCUMENT_DEPTH = 20


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


# One encoder for every call: json.dumps with options builds a new encoder each time.
_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_default,
)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: equal documents give equal strings."""
    return _ENCODER.encode(value)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def json_document(value: Any, *, field: str, limit: int = MAX_DOCUMENT_BYTES) -> Any:
    """Return ``value`` as plain JSON data (what the database will hand back), or raise."""
    from agent_control_plane.errors import InvalidInputError

    # Before encoding: the encoder recurses, and a cycle would never end.
    if nesting_exceeds(value, MAX_DOCUMENT_DEPTH):
        raise InvalidInputError(
            field, f"nests objects and arrays more than {MAX_DOCUMENT_DEPTH} levels deep"
        )
    try:
        text = canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(field, f"must be JSON-serializable ({exc})") from exc
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidInputError(
            field, "must not contain lone surrogates (U+D800 to U+DFFF)"
        ) from None
    if size > limit:
        raise InvalidInputError(field, f"is larger than {limit} bytes as JSON")
    data = json.loads(text)
    if "\\u0000" in text and _holds_nul(data):
        raise InvalidInputError(field, "must not contain NUL characters (\\u0000)")
    return data


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests dicts, lists and tuples more than ``limit`` deep (a scalar
    is 0 deep, ``{"a": [1]}`` is 2). Walks without recursion and stops at the limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth == limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _holds_nul(value: Any) -> bool:
    """Whether any string or key holds a NUL: PostgreSQL's JSONB cannot store one."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
