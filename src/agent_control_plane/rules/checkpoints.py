"""Checkpoints: signed statements of the whole trail, kept where the database cannot reach.

A checkpoint names every session's head (its last event's seq and link) at one time. A
link covers everything before it, so a head pins its session's history: later, a head
behind its checkpoint, a head that differs, or a session gone shows — whoever could write
the database, as long as they could not sign (RFC 6962's signed tree heads, in small).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent_control_plane.rules.audit import Anchor, AuditProblem, StoredEvent
from agent_control_plane.rules.audit_keys import Keyring
from agent_control_plane.rules.canonical import canonical_json
from agent_control_plane.rules.signatures import Signature, Signer, signature_problem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "acp-audit-checkpoint/1"


@dataclass(frozen=True, slots=True)
class Head:
    """A session's last event (seq and link), and the seq its prune anchor stood at."""

    session_id: uuid.UUID
    seq: int
    hash: str
    anchor_seq: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of the trail: every session's head, the highest event id, the
    number of sessions and of events (those not pruned), and when it was taken."""

    taken_at: datetime
    max_event_id: int
    heads: tuple[Head, ...]
    signature: Signature

    @property
    def sessions(self) -> int:
        return len(self.heads)

    @property
    def events(self) -> int:
        return sum(head.seq - head.anchor_seq for head in self.heads)

    @staticmethod
    def _body(taken_at: datetime, max_event_id: int, heads: tuple[Head, ...]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "taken_at": taken_at.isoformat(timespec="microseconds"),
            "max_event_id": max_event_id,
            "sessions": len(heads),
            "events": sum(head.seq - head.anchor_seq for head in heads),
            "heads": [[str(h.session_id), h.seq, h.hash, h.anchor_seq] for h in heads],
        }

    def statement(self) -> str:
        """What the signature covers."""
        return canonical_json(self._body(self.taken_at, self.max_event_id, self.heads))

    @classmethod
    def signed(
        cls, taken_at: datetime, max_event_id: int, heads: Iterable[Head], signer: Signer
    ) -> Checkpoint:
        ordered = tuple(sorted(heads, key=lambda head: str(head.session_id)))
        body = canonical_json(cls._body(taken_at, max_event_id, ordered))
        return cls(taken_at, max_event_id, ordered, signer.sign(body))

    def to_json_data(self) -> dict[str, Any]:
        signature = self.signature
        return {
            **self._body(self.taken_at, self.max_event_id, self.heads),
            "signature": {
                "algorithm": signature.algorithm,
                "key_id": signature.key_id,
                "value": signature.value,
            },
        }

    @classmethod
    def from_json_data(cls, data: Any) -> Checkpoint:
        """Read a checkpoint back; ValueError when it is not one."""
        try:
            if data["format"] != FORMAT:
                raise ValueError(f"format {data['format']!r} is not {FORMAT!r}")
            signature = data["signature"]
            checkpoint = cls(
                taken_at=datetime.fromisoformat(data["taken_at"]),
                max_event_id=int(data["max_event_id"]),
                heads=tuple(
                    Head(uuid.UUID(sid), int(seq), str(link), int(anchor))
                    for sid, seq, link, anchor in data["heads"]
                ),
                signature=Signature(
                    str(signature["algorithm"]), str(signature["key_id"]), str(signature["value"])
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an ACP audit checkpoint: {exc!r}") from exc
        if checkpoint.taken_at.tzinfo is None:
            raise ValueError("not an ACP audit checkpoint: taken_at has no time zone")
        return checkpoint


def reference(
    checkpoints: Iterable[Checkpoint],
    keys: Keyring,
    public_keys: Mapping[str, Ed25519PublicKey],
) -> tuple[Checkpoint | None, list[AuditProblem]]:
    """The newest checkpoint whose signature verifies, and a problem for each newer one
    that does not (or for there being none)."""
    problems: list[AuditProblem] = []
    for checkpoint in sorted(checkpoints, key=lambda c: c.taken_at, reverse=True):
        reason = signature_problem(checkpoint.statement(), checkpoint.signature, keys, public_keys)
        if reason is None:
            return checkpoint, problems
        detail = f"the checkpoint of {_when(checkpoint)}: {reason}"
        problems.append(AuditProblem(None, 0, "bad_checkpoint", detail))
    if not problems:
        problems.append(AuditProblem(None, 0, "bad_checkpoint", "no checkpoint to verify against"))
    return None, problems


def _when(checkpoint: Checkpoint) -> str:
    return checkpoint.taken_at.isoformat(timespec="seconds")


def head_problems(
    checkpoint: Checkpoint,
    head: Head,
    current_seq: int,
    event_at_head: StoredEvent | None,
    marker: Anchor | None,
) -> tuple[list[AuditProblem], int]:
    """Whether a session still holds the head its checkpoint saw; and the seq through
    which the checkpoint vouches for the session's events (0: none)."""
    sid = head.session_id

    def problem(kind: str, detail: str) -> tuple[list[AuditProblem], int]:
        return [AuditProblem(sid, head.seq, kind, detail)], 0

    if current_seq < head.seq:
        return problem(
            "behind_checkpoint",
            f"the session's last event is {current_seq}, but the checkpoint of "
            f"{_when(checkpoint)} saw event {head.seq}: events were cut off",
        )
    if event_at_head is not None:
        if event_at_head.hash != head.hash:
            return problem(
                "differs_from_checkpoint",
                f"event {head.seq} is not the one the checkpoint of {_when(checkpoint)} saw: "
                "the history up to it was rewritten",
            )
        return [], head.seq
    if marker is not None and marker.seq == head.seq and marker.hash != head.hash:
        return problem(
            "differs_from_checkpoint",
            f"the prune anchor at event {head.seq} is not the event the checkpoint of "
            f"{_when(checkpoint)} saw",
        )
    # Pruned since (the anchor is checked on its own), or missing (the chain names it).
    return [], 0


def missing_session(checkpoint: Checkpoint, head: Head) -> AuditProblem:
    return AuditProblem(
        head.session_id,
        head.seq,
        "session_missing",
        f"the checkpoint of {_when(checkpoint)} saw this session with {head.seq} events; "
        "it is gone",
    )
