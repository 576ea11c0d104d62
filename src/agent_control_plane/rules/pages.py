"""Keyset pagination: cursors that encode the last row's sort key, and page limits."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.models import Page

T = TypeVar("T")
MAX_PAGE = 1000
MAX_CURSOR = 200


def page_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError("limit", f"must be an integer between 1 and {MAX_PAGE}")
    return limit


def encode(at: datetime, key: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode(cursor: object, listing: str) -> tuple[datetime, uuid.UUID] | None:
    """The sort key a cursor of ``listing`` holds; a cursor that ``encode`` did not write
    (forged, cut short, another listing's) is refused before any SQL is built from it."""
    if cursor is None:
        return None
    refused = InvalidInputError("cursor", f"not a cursor returned by {listing}")
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > MAX_CURSOR:
        raise refused
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or when.utcoffset() != timedelta(0):
            raise ValueError("a cursor's time is in UTC")
        return when, uuid.UUID(key)
    except (ValueError, TypeError) as exc:
        raise refused from exc


def page(items: list[T], limit: int, key: Callable[[T], tuple[datetime, uuid.UUID]]) -> Page[T]:
    """``items`` holds up to limit + 1 rows: the extra one only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=items, next_cursor=encode(*key(items[-1])) if more else None)
