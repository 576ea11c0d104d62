"""Prune anchors: each prune records, signed, where the session's chain now resumes.

A session row's prune marker (``pruned_seq``, ``pruned_hash``) says its first events are
gone on purpose. The marker is believed only when an anchor row backs it, and, when the
verifier holds a key, only when that row is signed with one of its keys (or a signed
checkpoint saw it): anyone can write a marker, only the key holder can sign an anchor.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from agent_control_plane.rules.audit import Anchor, AuditProblem
from agent_control_plane.rules.audit_keys import AuditKey, Keyring
from agent_control_plane.rules.canonical import canonical_json

_FORMAT = "acp-prune-anchor/1"


@dataclass(frozen=True, slots=True)
class PruneAnchor:
    """Pruning removed ``session_id``'s events 1..``seq``; the last one had this link
    and left the session's counters at these values."""

    session_id: uuid.UUID
    seq: int
    hash: str
    cost_used: Decimal | None
    actions_used: int | None
    created_at: datetime
    key_id: str | None
    signature: str | None

    def statement(self) -> str:
        return canonical_json(
            [
                _FORMAT,
                str(self.session_id),
                self.seq,
                self.hash,
                None if self.cost_used is None else str(self.cost_used),
                self.actions_used,
                self.created_at.isoformat(timespec="microseconds"),
                self.key_id,
            ]
        )

    @classmethod
    def signed(
        cls, session_id: uuid.UUID, anchor: Anchor, now: datetime, key: AuditKey | None
    ) -> PruneAnchor:
        cost_used, actions_used = anchor.counters or (None, None)
        unsigned = cls(
            session_id,
            anchor.seq,
            anchor.hash,
            cost_used,
            actions_used,
            now,
            None if key is None else key.id,
            None,
        )
        if key is None:
            return unsigned
        return replace(unsigned, signature=key.sign(unsigned.statement()))

    @property
    def anchor(self) -> Anchor:
        counters = None
        if self.cost_used is not None and self.actions_used is not None:
            counters = (self.cost_used, self.actions_used)
        return Anchor(self.seq, self.hash, counters)


def marker_problems(
    session_id: uuid.UUID,
    marker: Anchor | None,
    anchor: PruneAnchor | None,
    keys: Keyring,
    *,
    vouched: bool = False,
) -> list[AuditProblem]:
    """Whether the session's prune marker is backed by its anchor (and, with keys, by a
    signature or a checkpoint that saw it: ``vouched``)."""
    if marker is None:
        return []

    def problem(detail: str, kind: str = "unbacked_prune") -> list[AuditProblem]:
        return [AuditProblem(session_id, marker.seq, kind, detail)]

    if anchor is None or (anchor.seq, anchor.hash) != (marker.seq, marker.hash):
        return problem(f"events up to {marker.seq} are marked pruned, but no prune anchor says so")
    if anchor.key_id is None or anchor.signature is None:
        if keys.keyed and not vouched:
            return problem(
                f"events up to {marker.seq} are marked pruned by an unsigned anchor that no "
                "checkpoint saw: pruned without an audit key, or by someone without it"
            )
        return []
    key = keys.get(anchor.key_id)
    if key is None:
        return problem(
            f"the prune anchor is signed with audit key {anchor.key_id}, which this "
            "verification was not given (open ACP with it in audit_keys=, or ACP_AUDIT_KEYS)",
            "unknown_key",
        )
    if not hmac.compare_digest(key.sign(anchor.statement()), anchor.signature):
        return problem("the prune anchor's signature does not verify: it was not written by ACP")
    return []
