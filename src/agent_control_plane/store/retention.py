"""Statements that prune a terminal session's old events behind a verifiable anchor."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from agent_control_plane.errors import MaintenanceRoleRequiredError
from agent_control_plane.migrations.grants import permission_denied
from agent_control_plane.rules.anchors import PruneAnchor
from agent_control_plane.rules.audit import Anchor, StoredEvent
from agent_control_plane.rules.lifecycle import TERMINAL_STATUSES
from agent_control_plane.runtime import Runtime
from agent_control_plane.store.events import to_event


@dataclass(frozen=True, slots=True)
class Prunable:
    """A terminal session with events older than the cutoff, and its current anchor."""

    id: uuid.UUID
    anchor: Anchor
    events: int


def claim_prunable(
    connection: Connection,
    runtime: Runtime,
    created_before: datetime,
    after: uuid.UUID | None,
    limit: int,
) -> list[Prunable]:
    """Lock up to ``limit`` terminal sessions (ids after ``after``) holding events created
    before the cutoff, that no other worker holds (SKIP LOCKED on the session rows only:
    a locking read does not lock the rows its subquery reads)."""
    s = runtime.tables.sessions.c
    e = runtime.tables.events.c
    old_events = (
        select(e.id)
        .where(
            e.session_id == s.id,
            e.seq > func.coalesce(s.pruned_seq, 0),
            e.created_at < created_before,
        )
        .exists()
    )
    query = (
        select(s.id, s.pruned_seq, s.pruned_hash, s.next_seq)
        .where(s.status.in_(TERMINAL_STATUSES), old_events)
        .order_by(s.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(s.id > after)
    return [
        Prunable(row.id, Anchor.of(row.pruned_seq, row.pruned_hash), row.next_seq - 1)
        for row in connection.execute(query)
    ]


def last_old_seq(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, created_before: datetime
) -> int | None:
    """The highest seq created before the cutoff: everything up to it goes."""
    e = runtime.tables.events.c
    return connection.execute(
        select(func.max(e.seq)).where(e.session_id == session_id, e.created_at < created_before)
    ).scalar_one_or_none()


def chain_until(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, last_seq: int
) -> list[StoredEvent]:
    """The session's stored events with seq up to ``last_seq``, in order."""
    events = runtime.tables.events
    query = (
        select(events)
        .where(events.c.session_id == session_id, events.c.seq <= last_seq)
        .order_by(events.c.seq)
    )
    stored = []
    for row in connection.execute(query):
        event = to_event(row)
        stored.append(StoredEvent(content=event, prev_hash=event.prev_hash, hash=event.hash))
    return stored


def prune_until(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    new_anchor: Anchor,
    now: datetime,
) -> int:
    """Write the anchor (signed with the current audit key, if any), delete the events up
    to it and mark the session row with it. Only the maintenance role may: the
    application's role raises MaintenanceRoleRequiredError."""
    anchor = PruneAnchor.signed(session_id, new_anchor, now, runtime.keys.current)
    e = runtime.tables.events.c
    try:
        connection.execute(
            insert(runtime.tables.audit_anchors).values(
                session_id=anchor.session_id,
                seq=anchor.seq,
                hash=anchor.hash,
                cost_used=anchor.cost_used,
                actions_used=anchor.actions_used,
                created_at=anchor.created_at,
                key_id=anchor.key_id,
                signature=anchor.signature,
            )
        )
        deleted = connection.execute(
            delete(runtime.tables.events).where(
                and_(e.session_id == session_id, e.seq <= new_anchor.seq)
            )
        ).rowcount
    except DBAPIError as exc:
        if not permission_denied(exc):
            raise
        raise MaintenanceRoleRequiredError(
            "this database user may not prune events (it may add history, never delete it): "
            "run pruning (acp worker --event-retention) as the maintenance role, granted with "
            "acp db upgrade --grant-maintenance-to ROLE"
        ) from exc
    sessions = runtime.tables.sessions
    connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(pruned_seq=new_anchor.seq, pruned_hash=new_anchor.hash)
    )
    return int(deleted)
