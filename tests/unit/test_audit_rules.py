"""The hash chain: every kind of tampering is named."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from agent_control_plane.rules.audit import (
    GENESIS_HASH,
    EventContent,
    StoredEvent,
    event_hash,
    verify_chain,
)

SESSION = uuid.uuid4()


def chain(count: int) -> list[StoredEvent]:
    events, previous = [], GENESIS_HASH
    for seq in range(1, count + 1):
        content = EventContent(
            SESSION,
            seq,
            "decision",
            "act",
            "allowed",
            "r",
            Decimal("0.1"),
            {"n": seq},
            datetime(2026, 1, 1, tzinfo=UTC),
        )
        digest = event_hash(previous, content)
        events.append(StoredEvent(content, previous, digest))
        previous = digest
    return events


def problems(events: list[StoredEvent], expected: int) -> list[tuple[int, str]]:
    return [(p.seq, p.problem) for p in verify_chain(SESSION, events, expected)]


def test_an_intact_chain_verifies() -> None:
    assert problems(chain(5), 5) == []
    assert problems([], 0) == []


def test_edited_content_is_named() -> None:
    events = chain(5)
    edited = dataclasses.replace(events[2].content, payload={"n": 99})
    events[2] = dataclasses.replace(events[2], content=edited)
    assert problems(events, 5) == [(3, "edited")]


def test_an_edit_with_recomputed_hash_breaks_the_next_link() -> None:
    events = chain(5)
    edited = dataclasses.replace(events[2].content, cost=Decimal(0))
    events[2] = StoredEvent(edited, events[2].prev_hash, event_hash(events[2].prev_hash, edited))
    assert problems(events, 5) == [(4, "broken_link")]


def test_deleted_rows_are_named() -> None:
    events = chain(5)
    assert problems(events[:2] + events[3:], 5) == [(3, "missing"), (4, "broken_link")]
    assert problems(events[:4], 5) == [(5, "missing")]
    assert problems(events[1:], 5) == [(1, "missing"), (2, "broken_link")]


def test_inserted_and_reordered_rows_are_named() -> None:
    events = chain(5)
    extra = chain(6)[5]
    assert problems([*events, extra], 5) == [(6, "unexpected")]
    swapped = [events[0], events[2], events[1], events[3], events[4]]
    assert problems(swapped, 5) == [
        (2, "missing"),
        (3, "broken_link"),
        (2, "reordered"),
        (4, "broken_link"),
    ]


def test_a_rehashed_last_event_differs_from_the_recorded_head() -> None:
    events = chain(5)
    head = events[-1].hash
    edited = dataclasses.replace(events[4].content, outcome="denied")
    events[4] = StoredEvent(edited, events[4].prev_hash, event_hash(events[4].prev_hash, edited))
    assert [(p.seq, p.problem) for p in verify_chain(SESSION, events, 5, head)] == [(5, "edited")]
    assert verify_chain(SESSION, chain(5), 5, head) == []
