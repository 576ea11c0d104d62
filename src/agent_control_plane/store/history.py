"""What sequence rules and steer limits read: a session's earlier decisions, by action."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime


def like_pattern(glob: str) -> str:
    """A ``*``/``?`` glob as a LIKE pattern with ``\\`` as the escape character."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def count_decisions(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    action_glob: str,
    outcome: str,
    since: datetime | None = None,
) -> int:
    """How many decisions with ``outcome`` the session made for actions matching the glob.

    Served by the (session_id, action) index; run after the session row is locked,
    so the count cannot change until this decision commits.
    """
    e = runtime.tables.events.c
    query = select(func.count()).where(
        e.session_id == session_id,
        e.kind == "decision",
        e.outcome == outcome,
        e.action.like(like_pattern(action_glob), escape="\\"),
    )
    if since is not None:
        query = query.where(e.created_at > since)
    return int(connection.execute(query).scalar_one())
