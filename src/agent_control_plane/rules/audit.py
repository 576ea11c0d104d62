"""The audit chain: each event's hash covers its content and its predecessor's hash."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agent_control_plane.rules.canonical import canonical_json

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class EventContent:
    """Everything an event's hash covers."""

    session_id: uuid.UUID
    seq: int
    kind: str
    action: str | None
    outcome: str | None
    reason: str | None
    cost: Decimal | None
    payload: Any
    created_at: datetime


def event_hash(prev_hash: str, content: EventContent) -> str:
    material = canonical_json(
        [
            str(content.session_id),
            content.seq,
            content.kind,
            content.action,
            content.outcome,
            content.reason,
            None if content.cost is None else str(content.cost),
            content.payload,
            content.created_at.isoformat(timespec="microseconds"),
        ]
    )
    return hashlib.sha256(f"{prev_hash}:{material}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    content: EventContent
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditProblem:
    session_id: uuid.UUID
    seq: int
    problem: str  # "edited", "missing", "broken_link", "reordered", "unexpected"
    detail: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a pruned chain resumes: the last pruned event's seq and hash."""

    seq: int = 0
    hash: str = GENESIS_HASH

    @classmethod
    def of(cls, seq: int | None, hash: str | None) -> Anchor:
        return cls() if seq is None or hash is None else cls(seq, hash)


def verify_chain(
    session_id: uuid.UUID,
    events: Iterable[StoredEvent],
    expected_count: int,
    expected_head: str | None = None,
    anchor: Anchor = Anchor(),
) -> list[AuditProblem]:
    """Check one session's events (ordered by seq) against the chain and the session head.

    An edited row fails its own hash (the last one also its session's recorded head);
    a deleted row leaves a gap or a short tail; an inserted or reordered row breaks
    the link to its neighbour or its own hash. After pruning, the chain starts at
    ``anchor``: the first remaining event must follow the last pruned one.
    """
    problems: list[AuditProblem] = []
    previous_hash = anchor.hash
    expected_seq = anchor.seq + 1
    for event in events:
        seq = event.content.seq
        if seq <= anchor.seq:
            problems.append(
                AuditProblem(
                    session_id,
                    seq,
                    "unexpected",
                    f"events up to {anchor.seq} were pruned, yet this one is present",
                )
            )
            continue
        if seq < expected_seq:
            problems.append(
                AuditProblem(session_id, seq, "reordered", f"comes after event {expected_seq - 1}")
            )
        else:
            if seq > expected_seq:
                problems.append(
                    AuditProblem(
                        session_id,
                        expected_seq,
                        "missing",
                        f"events {expected_seq}..{seq - 1} are missing",
                    )
                )
            if event_hash(event.prev_hash, event.content) != event.hash:
                problems.append(
                    AuditProblem(session_id, seq, "edited", "content does not match its hash")
                )
            elif event.prev_hash != previous_hash:
                problems.append(
                    AuditProblem(
                        session_id, seq, "broken_link", "does not follow the event before it"
                    )
                )
            if seq > expected_count:
                problems.append(
                    AuditProblem(
                        session_id,
                        seq,
                        "unexpected",
                        f"the session recorded only {expected_count} events",
                    )
                )
            expected_seq = seq + 1
        previous_hash = event.hash
    if (
        expected_head is not None
        and previous_hash != expected_head
        and expected_seq > expected_count
    ):
        problems.append(
            AuditProblem(
                session_id,
                expected_seq - 1,
                "edited",
                "the last event is not the one the session recorded as its chain head",
            )
        )
    if expected_seq <= expected_count:
        problems.append(
            AuditProblem(
                session_id,
                expected_seq,
                "missing",
                f"events {expected_seq}..{expected_count} are missing",
            )
        )
    return problems
