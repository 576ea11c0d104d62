"""Statements that find and stop sessions whose agent stopped heart-beating."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.engine import Connection

from agent_control_plane.rules.lifecycle import Transition
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.statuses import SessionStatus
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.sessions import Allocated


def _stale(tables: AcpTables, last_seen_before: datetime) -> ColumnElement[bool]:
    """Active, and silent since before the cutoff: its last heartbeat, or, if it never
    sent one, its last change (opening or a governed action)."""
    s = tables.sessions.c
    return and_(
        s.status == SessionStatus.ACTIVE,
        or_(
            s.heartbeat_at < last_seen_before,
            and_(s.heartbeat_at.is_(None), s.updated_at < last_seen_before),
        ),
    )


def claim_stale(
    connection: Connection, runtime: Runtime, last_seen_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Lock up to ``limit`` stale sessions no other worker holds (SKIP LOCKED)."""
    s = runtime.tables.sessions.c
    query = (
        select(s.id)
        .where(_stale(runtime.tables, last_seen_before))
        .order_by(s.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(connection.execute(query).scalars())


def recover(
    connection: Connection,
    runtime: Runtime,
    session_ids: list[uuid.UUID],
    change: Transition,
    last_seen_before: datetime,
    now: datetime,
    reason: str,
) -> list[Allocated]:
    """Apply ``change`` to the claimed sessions still stale; each gets an event seq."""
    if not session_ids:
        return []
    s = runtime.tables.sessions.c
    where = and_(s.id.in_(session_ids), _stale(runtime.tables, last_seen_before))
    return session_store.transition_many(connection, runtime, where, change, now, reason)
