"""The audit chain: each event's link covers its content and its predecessor's link.

Without a key a link is a SHA-256 hash: it detects accidental damage, and nothing done by
someone who can write the database, who can recompute it. With a key a link is an
HMAC-SHA-256 that nobody without the key can compute. Every event also records the
session's counters after it, so a reset or edited counter does not match its chain.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agent_control_plane.rules.audit_keys import NO_KEYS, AuditKey, Keyring
from agent_control_plane.rules.canonical import canonical_json

GENESIS_HASH = "0" * 64

# A session's (cost_used, actions_used).
Counters = tuple[Decimal, int]
ZERO: Counters = (Decimal(0), 0)


@dataclass(frozen=True, slots=True)
class EventContent:
    """Everything an event's link covers."""

    session_id: uuid.UUID
    seq: int
    kind: str
    action: str | None
    outcome: str | None
    reason: str | None
    cost: Decimal | None
    payload: Any
    created_at: datetime
    # The session's counters after this event (None on events older than counters).
    cost_used: Decimal | None = None
    actions_used: int | None = None
    # The id of the audit key its link is keyed with (None: an unkeyed SHA-256 link).
    key_id: str | None = None

    @property
    def counters(self) -> Counters | None:
        if self.cost_used is None or self.actions_used is None:
            return None
        return self.cost_used, self.actions_used


def _material(content: EventContent) -> str:
    fields: list[Any] = [
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
    # Events written before counters and keys keep the links they were written with.
    if not (content.cost_used is None and content.actions_used is None and content.key_id is None):
        fields += [
            None if content.cost_used is None else str(content.cost_used),
            content.actions_used,
            content.key_id,
        ]
    return canonical_json(fields)


def event_hash(prev_hash: str, content: EventContent, key: AuditKey | None = None) -> str:
    """The event's link: SHA-256 over its predecessor's link and its content or, with
    ``key`` (the one ``content.key_id`` names), HMAC-SHA-256 over them."""
    message = f"{prev_hash}:{_material(content)}"
    if key is None:
        return hashlib.sha256(message.encode()).hexdigest()
    return key.sign(message)


def charge_of(content: EventContent) -> Counters:
    """What the event added to its session's counters: a charged decision its cost and one
    action, an outcome the difference it settled, anything else nothing."""
    payload = content.payload if isinstance(content.payload, dict) else {}
    if content.kind == "decision" and payload.get("charged") is True:
        return content.cost or Decimal(0), 1
    if content.kind == "outcome" and payload.get("settled") is not None:
        return Decimal(str(payload["settled"])), 0
    return ZERO


def plus(counters: Counters, charge: Counters) -> Counters:
    return counters[0] + charge[0], counters[1] + charge[1]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    content: EventContent
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing verification found wrong. ``session_id`` is None for a problem of the
    checkpoints themselves; ``seq`` is then 0."""

    session_id: uuid.UUID | None
    seq: int
    # edited, missing, broken_link, reordered, unexpected, unkeyed, unknown_key, counters,
    # unbacked_prune, behind_checkpoint, differs_from_checkpoint, session_missing,
    # bad_checkpoint
    problem: str
    detail: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a pruned chain resumes: the last pruned event's seq, link and counters."""

    seq: int = 0
    hash: str = GENESIS_HASH
    counters: Counters | None = ZERO

    @classmethod
    def of(cls, seq: int | None, hash: str | None, counters: Counters | None = None) -> Anchor:
        return cls() if seq is None or hash is None else cls(seq, hash, counters)


def _link_problem(
    session_id: uuid.UUID, event: StoredEvent, keys: Keyring, unkeyed_through: int | None
) -> AuditProblem | None:
    """Whether the event's own link is right, and keyed where it must be."""
    content = event.content
    key = None
    if content.key_id is not None:
        key = keys.get(content.key_id)
        if key is None:
            return AuditProblem(
                session_id,
                content.seq,
                "unknown_key",
                f"its link is keyed with audit key {content.key_id}, which this verification "
                "was not given (open ACP with it in audit_keys=, or ACP_AUDIT_KEYS)",
            )
    if event_hash(event.prev_hash, content, key) != event.hash:
        return AuditProblem(session_id, content.seq, "edited", "content does not match its hash")
    if key is None and unkeyed_through is not None and content.seq > unkeyed_through:
        return AuditProblem(
            session_id,
            content.seq,
            "unkeyed",
            "its link has no key and no checkpoint vouches for it: written without an audit "
            "key, or rewritten by someone without it",
        )
    return None


def verify_chain(
    session_id: uuid.UUID,
    events: Iterable[StoredEvent],
    expected_count: int,
    expected_head: str | None = None,
    anchor: Anchor = Anchor(),
    *,
    keys: Keyring = NO_KEYS,
    unkeyed_through: int | None = None,
    counters: Counters | None = None,
) -> list[AuditProblem]:
    """Check one session's events (ordered by seq) against the chain and the session head.

    An edited row fails its own link (the last one also its session's recorded head);
    a deleted row leaves a gap or a short tail; an inserted or reordered row breaks
    the link to its neighbour or its own link. After pruning, the chain starts at
    ``anchor``: the first remaining event must follow the last pruned one.

    ``keys`` verify keyed links; an unkeyed event past ``unkeyed_through`` is a problem
    (None: unkeyed events are fine). Across each intact link the counters must grow by
    the event's own charge, and ``counters`` (the session row's) must be its last event's.
    """
    problems: list[AuditProblem] = []
    previous_hash = anchor.hash
    previous_counters = anchor.counters
    head_counters = anchor.counters if expected_count == anchor.seq else None
    expected_seq = anchor.seq + 1
    reported: set[str] = set()  # unkeyed and unknown_key: once per session, not per event
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
            previous_counters = None
        else:
            intact = True
            if seq > expected_seq:
                problems.append(
                    AuditProblem(
                        session_id,
                        expected_seq,
                        "missing",
                        f"events {expected_seq}..{seq - 1} are missing",
                    )
                )
                intact = False
            link = _link_problem(session_id, event, keys, unkeyed_through)
            if link is not None:
                if link.problem not in reported:
                    problems.append(link)
                if link.problem in ("unkeyed", "unknown_key"):
                    reported.add(link.problem)
                intact = False
            elif event.prev_hash != previous_hash:
                problems.append(
                    AuditProblem(
                        session_id, seq, "broken_link", "does not follow the event before it"
                    )
                )
                intact = False
            if seq > expected_count:
                problems.append(
                    AuditProblem(
                        session_id,
                        seq,
                        "unexpected",
                        f"the session recorded only {expected_count} events",
                    )
                )
            recorded = event.content.counters
            if intact and previous_counters is not None and recorded is not None:
                following = plus(previous_counters, charge_of(event.content))
                if recorded != following:
                    problems.append(
                        AuditProblem(
                            session_id,
                            seq,
                            "counters",
                            f"records cost_used {recorded[0]} and actions_used {recorded[1]}, "
                            f"but the event before it and its own charge make {following[0]} "
                            f"and {following[1]}",
                        )
                    )
            previous_counters = recorded
            if seq == expected_count:
                head_counters = recorded
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
    if counters is not None and head_counters is not None and counters != head_counters:
        problems.append(
            AuditProblem(
                session_id,
                expected_count,
                "counters",
                f"the session holds cost_used {counters[0]} and actions_used {counters[1]}, "
                f"but its last event recorded {head_counters[0]} and {head_counters[1]}",
            )
        )
    return problems
