"""Reads of what the audit trail is checked against: session heads and prune anchors."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.engine import Connection

from agent_control_plane.rules.anchors import PruneAnchor
from agent_control_plane.rules.audit import Anchor
from agent_control_plane.rules.checkpoints import Head
from agent_control_plane.rules.trail import SessionState
from agent_control_plane.runtime import Runtime


def _page(query: Select[Any], id_column: Any, after: uuid.UUID | None, limit: int) -> Select[Any]:
    if after is not None:
        query = query.where(id_column > after)
    return query.order_by(id_column).limit(limit)


def session_states(
    connection: Connection,
    runtime: Runtime,
    *,
    after: uuid.UUID | None,
    only: uuid.UUID | None,
    limit: int,
) -> list[SessionState]:
    """Up to ``limit`` sessions by id (after ``after``, or just ``only``), in the database's
    order, each with the anchor row that backs its prune marker, if there is one."""
    s = runtime.tables.sessions.c
    anchors = runtime.tables.audit_anchors
    a = anchors.c
    query = select(
        s.id,
        s.next_seq,
        s.last_event_hash,
        s.cost_used,
        s.actions_used,
        s.pruned_seq,
        s.pruned_hash,
        a.seq.label("a_seq"),
        a.hash.label("a_hash"),
        a.cost_used.label("a_cost_used"),
        a.actions_used.label("a_actions_used"),
        a.created_at.label("a_created_at"),
        a.key_id.label("a_key_id"),
        a.signature.label("a_signature"),
    ).select_from(
        runtime.tables.sessions.outerjoin(
            anchors, and_(a.session_id == s.id, a.seq == s.pruned_seq)
        )
    )
    if only is not None:
        query = query.where(s.id == only)
    states = []
    for row in connection.execute(_page(query, s.id, after, limit)):
        anchor = None
        if row.a_seq is not None:
            anchor = PruneAnchor(
                row.id,
                row.a_seq,
                row.a_hash,
                row.a_cost_used,
                row.a_actions_used,
                row.a_created_at,
                row.a_key_id,
                row.a_signature,
            )
        marker = None if row.pruned_seq is None else Anchor.of(row.pruned_seq, row.pruned_hash)
        states.append(
            SessionState(
                row.id,
                row.next_seq - 1,
                row.last_event_hash,
                (row.cost_used, row.actions_used),
                marker,
                anchor,
            )
        )
    return states


def heads(
    connection: Connection, runtime: Runtime, *, after: uuid.UUID | None, limit: int
) -> list[Head]:
    """Up to ``limit`` sessions' heads by id (after ``after``), in the database's order."""
    s = runtime.tables.sessions.c
    query = select(s.id, s.next_seq, s.last_event_hash, s.pruned_seq)
    return [
        Head(row.id, row.next_seq - 1, row.last_event_hash or "", row.pruned_seq or 0)
        for row in connection.execute(_page(query, s.id, after, limit))
    ]
