"""Events: emit, read, the global feed, and verification of the hash chain."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from itertools import groupby
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from agent_control_plane.errors import InvalidInputError, SessionTerminatedError
from agent_control_plane.models import AuditReport, Event, Page
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import lifecycle, validation
from agent_control_plane.rules.audit import Anchor, AuditProblem, verify_chain
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot

_VERIFY_BATCH = 200


def emit(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    kind: str,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Append an event of your own ``kind`` to the session's audit trail."""
    sid = validation.session_id(session_id)
    kind = validation.event_kind(kind)
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
    with connection.begin():
        return event_store.for_session(connection, runtime, sid, after_seq, _limit(limit))


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
    try:
        after_id = int(cursor) if cursor else 0
    except ValueError:
        after_id = -1
    if not 0 <= after_id <= validation.MAX_COUNTER:
        raise InvalidInputError("cursor", "not a cursor returned by event_feed")
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


@repeatable
def verify_audit(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> AuditReport:
    """Recompute every hash chain (or one session's) and name each edited, missing,
    inserted or reordered event. ``progress(sessions_checked, sessions_total)``, if given,
    is called before the first batch of sessions and after each."""
    sessions = runtime.tables.sessions.c
    problems: list[AuditProblem] = []
    checked_sessions = checked_events = 0
    last: uuid.UUID | None = None
    only = None if session_id is None else validation.session_id(session_id)
    total = 0
    if progress is not None:
        if only is None:
            with connection.begin():
                total = session_store.count(connection, runtime)
        else:
            total = 1
        progress(0, total)
    while True:
        with connection.begin():
            query = (
                select(
                    sessions.id,
                    sessions.next_seq,
                    sessions.last_event_hash,
                    sessions.pruned_seq,
                    sessions.pruned_hash,
                )
                .order_by(sessions.id)
                .limit(_VERIFY_BATCH)
            )
            if only is not None:
                query = query.where(sessions.id == only)
            if last is not None:
                query = query.where(sessions.id > last)
            heads = {
                row.id: (
                    row.next_seq - 1,
                    row.last_event_hash,
                    Anchor.of(row.pruned_seq, row.pruned_hash),
                )
                for row in connection.execute(query)
            }
            if not heads:
                break
            rows = event_store.chain_rows(connection, runtime, list(heads))
            seen: set[uuid.UUID] = set()
            for sid, group in groupby(rows, key=lambda pair: pair[0]):
                chain = [stored for _, stored in group]
                seen.add(sid)
                checked_events += len(chain)
                problems += verify_chain(sid, chain, *heads[sid])
            for sid in heads.keys() - seen:
                problems += verify_chain(sid, [], *heads[sid])
        checked_sessions += len(heads)
        if progress is not None:
            # Sessions opened while verifying are checked too: the total grows with them.
            total = max(total, checked_sessions)
            progress(checked_sessions, total)
        # The last id in the database's order, not Python's: MariaDB's UUID type sorts
        # its bytes differently, and max() would make the next batch repeat sessions.
        last = next(reversed(heads))
        if only is not None:
            break
    return AuditReport(
        ok=not problems,
        sessions_checked=checked_sessions,
        events_checked=checked_events,
        problems=problems,
    )
