"""Keyset cursors and page limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules import pages


def test_a_cursor_round_trips_the_sort_key() -> None:
    key = (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), uuid.uuid4())
    assert pages.decode(pages.encode(*key), "x") == key
    assert pages.decode(None, "x") is None


# Fixed values: test ids must be the same in every pytest-xdist worker.
@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "bm9wZQ==",
        pages.encode(
            datetime(2026, 1, 2, tzinfo=UTC), uuid.UUID("12345678-1234-5678-1234-567812345678")
        )[:-4],
    ],
)
def test_a_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInputError, match="not a cursor returned by list_tickets"):
        pages.decode(cursor, "list_tickets")


@pytest.mark.parametrize("limit", [0, 1001, True, "10", 2.5])
def test_page_limits(limit: object) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        pages.page_limit(limit)


def test_the_extra_row_only_says_there_is_more() -> None:
    rows = [(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()) for _ in range(3)]
    full = pages.page(rows, 2, lambda row: row)
    assert (len(full.items), pages.decode(full.next_cursor, "x")) == (2, rows[1])
    assert pages.page(rows[:2], 2, lambda row: row).next_cursor is None
