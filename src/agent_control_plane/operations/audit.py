"""Events: emit, read, and the global feed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import InvalidInputError, SessionTerminatedError
from agent_control_plane.models import Event, Page
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import event_kinds, lifecycle, validation
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot


def emit(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    kind: str,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Append an event of your own ``kind`` (``app.`` and a name, e.g. ``app.note``) to the
    session's audit trail; every other kind is ACP's and refused."""
    return _append(connection, runtime, session_id, event_kinds.app_kind(kind), payload)


def record_event(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    kind: str,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Append an event of one of ACP's own kinds: for ACP's integrations (the MCP proxy's
    refusals), never for what a caller asks to write."""
    return _append(connection, runtime, session_id, event_kinds.acp_kind(kind), payload)


def _append(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    kind: str,
    payload: dict[str, Any] | None,
) -> Event:
    sid = validation.session_id(session_id)
    data = validation.document(payload, "payload")
    with connection.begin():
        row = session_store.allocate_seq(connection, runtime, sid)
        if row.status in lifecycle.TERMINAL_STATUSES:
            raise SessionTerminatedError(f"session {sid} is {row.status}: nothing more is recorded")
        values = event_store.append(
            connection, runtime, Slot.of(row), NewEvent(kind, payload=data), runtime.clock()
        )
        event = event_store.by_seq(connection, runtime, sid, values["seq"])
    assert event is not None
    return event


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidInputError("limit", "must be an integer between 1 and 10000")
    return limit


@repeatable
def events(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    after_seq: int = 0,
    limit: int = 1000,
) -> list[Event]:
    """The session's events with seq greater than ``after_seq``, in order."""
    sid = validation.session_id(session_id)
    after_seq = validation.counter(after_seq, "after_seq")
    with connection.begin():
        return event_store.for_session(connection, runtime, sid, after_seq, _limit(limit))


def _feed_position(cursor: Any) -> int:
    """The event id an event_feed cursor stands for (0: from the start)."""
    if cursor is None or cursor == "":
        return 0
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= 19:
        after_id = int(cursor)
        if after_id <= validation.MAX_COUNTER:
            return after_id
    raise InvalidInputError("cursor", "not a cursor returned by event_feed")


@repeatable
def event_feed(
    connection: Connection,
    runtime: Runtime,
    cursor: str | None = None,
    limit: int = 100,
    kind: str | None = None,
    tenant: str | None = None,
) -> Page[Event]:
    """Every session's events (or one tenant's sessions' events) in commit-id order; pass
    ``next_cursor`` back to continue."""
    tenant = validation.text(tenant, "tenant", optional=True)
    kind = validation.text(kind, "kind", optional=True)
    after_id = _feed_position(cursor)
    with connection.begin():
        items = event_store.feed(connection, runtime, after_id, _limit(limit), kind, tenant)
    return Page(items=items, next_cursor=str(items[-1].id) if items else cursor)


@repeatable
def event_feed_head(
    connection: Connection, runtime: Runtime, *, tenant: str | None = None
) -> str | None:
    """The event_feed cursor of the newest event (of ``tenant``'s sessions, if given): pass
    it to event_feed to read only what commits after now. None when there are no events."""
    tenant = validation.text(tenant, "tenant", optional=True)
    with connection.begin():
        newest = event_store.newest_id(connection, runtime, tenant)
    return None if newest is None else str(newest)
