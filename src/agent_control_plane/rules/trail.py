"""One session's whole check: its chain, its prune marker, its checkpointed head; and what
a verification can promise in each configuration."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from agent_control_plane.rules.anchors import PruneAnchor, marker_problems
from agent_control_plane.rules.audit import (
    Anchor,
    AuditProblem,
    Counters,
    StoredEvent,
    verify_chain,
)
from agent_control_plane.rules.audit_keys import Keyring
from agent_control_plane.rules.checkpoints import Checkpoint, Head, head_problems


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a session row says of its chain, with the anchor backing its prune marker."""

    session_id: uuid.UUID
    head_seq: int
    head_hash: str | None
    counters: Counters
    marker: Anchor | None
    anchor: PruneAnchor | None


def session_problems(
    state: SessionState,
    events: Sequence[StoredEvent],
    keys: Keyring,
    checkpoint: Checkpoint | None = None,
    head: Head | None = None,
) -> list[AuditProblem]:
    """Everything wrong with one session: its checkpointed head (if ``head``), its prune
    marker, then its chain from where the marker says it resumes."""
    problems: list[AuditProblem] = []
    vouched_through = 0
    if checkpoint is not None and head is not None:
        at_head = next((e for e in events if e.content.seq == head.seq), None)
        found, vouched_through = head_problems(
            checkpoint, head, state.head_seq, at_head, state.marker
        )
        problems += found
    marker, anchor = state.marker, state.anchor
    seen = head is not None and marker is not None and head.anchor_seq == marker.seq
    unbacked = marker_problems(state.session_id, marker, anchor, keys, vouched=seen)
    problems += unbacked
    start = Anchor()
    if marker is not None:
        # Counters are taken from the anchor only when it is to be believed.
        counters = None if unbacked or anchor is None else anchor.anchor.counters
        start = Anchor(marker.seq, marker.hash, counters)
    problems += verify_chain(
        state.session_id,
        events,
        state.head_seq,
        state.head_hash,
        start,
        keys=keys,
        unkeyed_through=vouched_through if keys.keyed else None,
        counters=state.counters,
    )
    return problems


def assurance(keys: Keyring, checkpoint: Checkpoint | None) -> str:
    """What a verification in this configuration detects, and against whom."""
    if checkpoint is not None:
        when = checkpoint.taken_at.isoformat(timespec="seconds")
        scope = (
            f"checked against the signed checkpoint of {when}: any change to the trail it "
            "covers (a cut tail, a deleted session, rewritten history) is detected, even by "
            "someone who can write the database"
        )
        if keys.keyed:
            return (
                f"keyed chain (HMAC-SHA-256) {scope}; after it, any event edited, inserted, "
                "reordered or forged without the audit key"
            )
        return (
            f"unkeyed hash chain {scope}; after it, accidental damage only: the events since "
            "can be rewritten by anyone who can write the database"
        )
    if keys.keyed:
        return (
            "keyed chain (HMAC-SHA-256): any event edited, inserted, reordered or forged by "
            "someone without the audit key is detected; a cut tail or a deleted session is not "
            "(verify against signed checkpoints kept outside the database for that)"
        )
    return (
        "unkeyed hash chain: detects accidental damage only; anyone who can write the "
        "database can rewrite the trail and recompute its hashes (open ACP with an audit key)"
    )
