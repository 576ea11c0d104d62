"""The tamper matrix: attacks by someone with full access to the database, who knows the
chain's algorithm but not the audit key, and what each configuration detects of them.

The table in docs/concepts/audit.md is rendered from EXPECTED here, and the matrix test
asserts exactly that table on every database, so neither can drift from the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from agent_control_plane import ControlPlane
from agent_control_plane.rules.anchors import PruneAnchor
from agent_control_plane.rules.audit import (
    GENESIS_HASH,
    ZERO,
    Anchor,
    EventContent,
    charge_of,
    event_hash,
    plus,
)
from agent_control_plane.rules.audit_keys import AuditKey
from agent_control_plane.schema.types import to_money
from tests.policies import SUPPORT_BOT

AUDIT_KEY = "the tamper matrix's audit key: 32 bytes or more"
NO_KEY, KEY, KEY_AND_CHECKPOINTS = "no key", "key", "key and checkpoints"
CONFIGURATIONS = (NO_KEY, KEY, KEY_AND_CHECKPOINTS)
# What the attacker signs with when a signature is needed: never the real key.
ATTACKER_SECRET = b"the attacker's own key, 32 bytes and more"
_CONTENT = tuple(field.name for field in fields(EventContent))

Row = dict[str, Any]
# Recomputes one row's link from its predecessor's: the attacker's best, without the key.
Relink = Callable[[str, Row], Row]


def _content(row: Row) -> EventContent:
    return EventContent(**{name: row[name] for name in _CONTENT})


def unkeyed(previous: str, row: Row) -> Row:
    """Relink as the algorithm does without a key (stripping any key id)."""
    row = {**row, "key_id": None, "prev_hash": previous}
    return {**row, "hash": event_hash(previous, _content(row))}


def wrong_key(previous: str, row: Row) -> Row:
    """Relink keyed links with a key of the attacker's own, under the real key's id."""
    row = {**row, "prev_hash": previous}
    if row["key_id"] is None:
        return unkeyed(previous, row)
    forged = AuditKey(row["key_id"], ATTACKER_SECRET)
    return {**row, "hash": event_hash(previous, _content(row), forged)}


class Attacker:
    """Reads and rewrites rows straight in the database."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.events = cp.tables.events
        self.sessions = cp.tables.sessions
        self.anchors = cp.tables.audit_anchors

    def rows(self, sid: uuid.UUID) -> list[Row]:
        e = self.events.c
        with self.cp.engine.connect() as connection:
            result = connection.execute(
                select(self.events).where(e.session_id == sid).order_by(e.seq)
            )
            return [dict(row._mapping) for row in result]

    def run(self, *statements: Any) -> None:
        with self.cp.engine.begin() as connection:
            for statement in statements:
                connection.execute(statement)

    def replace_chain(
        self, sid: uuid.UUID, rows: Sequence[Row], relink: Relink | None = None
    ) -> None:
        """Store ``rows`` as the session's whole chain, its head and counters moved to
        match; with ``relink``, first renumber, recount and relink them as the algorithm
        would."""
        if relink is not None:
            previous, counters, rebuilt = GENESIS_HASH, ZERO, []
            for seq, row in enumerate(rows, 1):
                row = {**row, "session_id": sid, "seq": seq}
                counters = plus(counters, charge_of(_content(row)))
                counted = {**row, "cost_used": to_money(counters[0]), "actions_used": counters[1]}
                row = relink(previous, counted)
                rebuilt.append(row)
                previous = row["hash"]
            rows = rebuilt
        last = rows[-1]
        e, s = self.events.c, self.sessions.c
        self.run(
            delete(self.events).where(e.session_id == sid),
            *(insert(self.events).values({k: v for k, v in r.items() if k != "id"}) for r in rows),
            update(self.sessions)
            .where(s.id == sid)
            .values(
                next_seq=last["seq"] + 1,
                last_event_hash=last["hash"],
                cost_used=last["cost_used"],
                actions_used=last["actions_used"],
            ),
        )


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    # The configurations that detect it.
    detected_by: frozenset[str]
    # How many victim sessions it needs, and what it does to them.
    victims: int
    run: Callable[[Attacker, list[uuid.UUID], Relink], None]


def _edit_row(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    e = a.events.c
    a.run(
        update(a.events)
        .where(e.session_id == victims[0], e.seq == 4)
        .values(reason="tier.auto_approve:innocent", outcome="allowed")
    )


def _delete_middle(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    e = a.events.c
    a.run(delete(a.events).where(e.session_id == victims[0], e.seq == 4))


def _delete_tail(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    e = a.events.c
    a.run(delete(a.events).where(e.session_id == victims[0], e.seq >= 7))


def _cut_tail(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    a.replace_chain(victims[0], a.rows(victims[0])[:5])


def _forge(
    relink_with: Relink | None = None,
) -> Callable[[Attacker, list[uuid.UUID], Relink], None]:
    def forge(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
        rows = a.rows(victims[0])
        allowed = rows[5]  # the decision at seq 6: allowed, charged 1
        rows[5] = {
            **allowed,
            "outcome": "denied",
            "reason": "tier.blocked",
            "payload": {**allowed["payload"], "charged": False},
        }
        a.replace_chain(victims[0], rows, relink_with or relink)

    return forge


def _renumber(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    rows = a.rows(victims[0])
    del rows[3]  # the denied decision at seq 4
    a.replace_chain(victims[0], rows, relink)


def _delete_session(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    sid = victims[0]
    a.run(
        delete(a.events).where(a.events.c.session_id == sid),
        delete(a.sessions).where(a.sessions.c.id == sid),
    )


def _reset_counters(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    s = a.sessions.c
    a.run(update(a.sessions).where(s.id == victims[0]).values(cost_used=0, actions_used=0))


def _fake_prune(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    sid = victims[0]
    rows = a.rows(sid)
    last_gone = rows[2]
    anchor = Anchor(3, last_gone["hash"], (last_gone["cost_used"], last_gone["actions_used"]))
    key = None if last_gone["key_id"] is None else AuditKey(last_gone["key_id"], ATTACKER_SECRET)
    signed = PruneAnchor.signed(sid, anchor, datetime.now(UTC), key)
    e, s = a.events.c, a.sessions.c
    a.run(
        delete(a.events).where(e.session_id == sid, e.seq <= 3),
        insert(a.anchors).values(
            session_id=sid,
            seq=signed.seq,
            hash=signed.hash,
            cost_used=signed.cost_used,
            actions_used=signed.actions_used,
            created_at=signed.created_at,
            key_id=signed.key_id,
            signature=signed.signature,
        ),
        update(a.sessions).where(s.id == sid).values(pruned_seq=3, pruned_hash=last_gone["hash"]),
    )


def _swap(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    one, other = victims
    ones, others = a.rows(one), a.rows(other)
    ones[2], others[2] = others[2], ones[2]
    a.replace_chain(one, ones, relink)
    a.replace_chain(other, others, relink)


def _replay(a: Attacker, victims: list[uuid.UUID], relink: Relink) -> None:
    rows = a.rows(victims[0])
    a.replace_chain(victims[0], [*rows, rows[1]], relink)  # the allowed decision at seq 2


ALL = frozenset(CONFIGURATIONS)
WITH_KEY = frozenset({KEY, KEY_AND_CHECKPOINTS})
WITH_CHECKPOINTS = frozenset({KEY_AND_CHECKPOINTS})

EXPECTED = (
    Attack("edited_row", "an event's reason and outcome edited in place", ALL, 1, _edit_row),
    Attack("deleted_middle_row", "an event in the middle deleted", ALL, 1, _delete_middle),
    Attack("deleted_tail_rows", "the last two events deleted", ALL, 1, _delete_tail),
    Attack(
        "tail_cut_head_moved",
        "the last three events deleted, the session's head and counters moved back to match",
        WITH_CHECKPOINTS,
        1,
        _cut_tail,
    ),
    Attack(
        "forged_and_rechained",
        "an allowed decision turned into a denied one, every later link and counter recomputed",
        WITH_KEY,
        1,
        _forge(),
    ),
    Attack(
        "renumbered",
        "a middle event deleted, the rest renumbered, relinked and recounted",
        WITH_KEY,
        1,
        _renumber,
    ),
    Attack(
        "session_deleted",
        "a whole session deleted, events and all",
        WITH_CHECKPOINTS,
        1,
        _delete_session,
    ),
    Attack("counters_reset", "a session's budget counters reset to zero", ALL, 1, _reset_counters),
    Attack(
        "fake_prune_marker",
        "an active session's first events deleted behind a prune marker and an anchor row "
        "signed without the key",
        WITH_KEY,
        1,
        _fake_prune,
    ),
    Attack(
        "sessions_swapped",
        "two sessions exchange an event, both chains relinked and recounted",
        WITH_KEY,
        2,
        _swap,
    ),
    Attack(
        "old_event_replayed",
        "an earlier allowed decision appended again as the newest event, relinked",
        WITH_KEY,
        1,
        _replay,
    ),
    Attack(
        "forged_with_wrong_key",
        "an allowed decision turned into a denied one, every later link recomputed with a "
        "key of the attacker's own",
        WITH_KEY,
        1,
        _forge(wrong_key),
    ),
)


def standard_session(cp: ControlPlane) -> uuid.UUID:
    """Eight events: opened; allowed 0.5; allowed 0.25; denied; the second's outcome
    (settled at 0.2); allowed 1; a note; allowed 0.1."""
    sid = cp.open_session(agent_id="victim", policy=SUPPORT_BOT, max_cost=100, max_actions=99).id
    cp.govern(sid, "work", cost="0.5")
    second = cp.govern(sid, "work", cost="0.25")
    assert not cp.govern(sid, "drop_database").allowed
    cp.record_outcome(second, "succeeded", actual_cost="0.2")
    cp.govern(sid, "work", cost="1")
    cp.emit(sid, "app.note", {"n": 1})
    cp.govern(sid, "work", cost="0.1")
    return sid


def render_table() -> str:
    """The matrix as the docs show it."""
    header = "| attack | " + " | ".join(CONFIGURATIONS) + " |"
    lines = [header, "|---|" + "---|" * len(CONFIGURATIONS)]
    for attack in EXPECTED:
        marks = " | ".join(
            "detected" if config in attack.detected_by else "**not detected**"
            for config in CONFIGURATIONS
        )
        lines.append(f"| {attack.description} | {marks} |")
    return "\n".join(lines)
