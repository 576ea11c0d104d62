"""Keyset pagination: cursors that encode the last row's sort key, and page limits."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.models import Page

T = TypeVar("T")
MAX_PAGE = 1000


def page_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError("limit", f"must be an integer between 1 and {MAX_PAGE}")
    return limit


def encode(at: datetime, key: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode(cursor: str | None, listing: str) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), uuid.UUID(key)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("cursor", f"not a cursor returned by {listing}") from exc


def page(items: list[T], limit: int, key: Callable[[T], tuple[datetime, uuid.UUID]]) -> Page[T]:
    """``items`` holds up to limit + 1 rows: the extra one only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=items, next_cursor=encode(*key(items[-1])) if more else None)
