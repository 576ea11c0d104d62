"""Event statements: append (hash-chained), read a session's events, the global feed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Row,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from agent_control_plane.models import Event
from agent_control_plane.rules.audit import (
    GENESIS_HASH,
    Counters,
    EventContent,
    StoredEvent,
    event_hash,
)
from agent_control_plane.rules.audit_keys import AuditKey
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.schema.types import to_money
from agent_control_plane.store import idempotency
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.prepared import execute, fetch, insert_id
from agent_control_plane.store.rows import sessions_of_tenant, to_model


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: str
    action: str | None = None
    outcome: str | None = None
    reason: str | None = None
    cost: Decimal | None = None
    payload: Any = None


def _values(
    session_id: uuid.UUID,
    seq: int,
    prev_hash: str | None,
    counters: Counters,
    event: NewEvent,
    now: datetime,
    key: AuditKey | None,
) -> dict[str, Any]:
    previous = prev_hash or GENESIS_HASH
    content = EventContent(
        session_id=session_id,
        seq=seq,
        kind=event.kind,
        action=event.action,
        outcome=event.outcome,
        reason=event.reason,
        cost=event.cost,
        payload=event.payload,
        created_at=now,
        # As the database hands it back (9 places), or the link would not verify.
        cost_used=to_money(counters[0]),
        actions_used=counters[1],
        key_id=None if key is None else key.id,
    )
    return {
        "session_id": session_id,
        "seq": seq,
        "kind": event.kind,
        "action": event.action,
        "outcome": event.outcome,
        "reason": event.reason,
        "cost": event.cost,
        "payload": event.payload,
        "created_at": now,
        "prev_hash": previous,
        "hash": event_hash(previous, content, key),
        "cost_used": content.cost_used,
        "actions_used": content.actions_used,
        "key_id": content.key_id,
    }


@dataclass(frozen=True, slots=True)
class Slot:
    """Where the next event goes: its session, its seq, the hash it must follow, and the
    session's counters once the event is in (which the event records)."""

    session_id: uuid.UUID
    seq: int
    prev_hash: str | None
    counters: Counters

    @classmethod
    def of(cls, allocated: Any) -> Slot:
        """The slot a session statement allocated (anything with id, seq, prev_hash,
        cost_used and actions_used: the session's state after that statement)."""
        return cls(
            allocated.id,
            allocated.seq,
            allocated.prev_hash,
            (allocated.cost_used, allocated.actions_used),
        )


@lru_cache(maxsize=32)
def _insert_event(tables: AcpTables) -> Insert:
    events = tables.events
    return (
        insert(events)
        .values({name: bindparam(f"e_{name}", type_=events.c[name].type) for name in EVENT_COLUMNS})
        .inline()
    )


@lru_cache(maxsize=32)
def _move_head(tables: AcpTables) -> Update:
    sessions = tables.sessions
    return (
        update(sessions)
        .where(sessions.c.id == bindparam("h_session", type_=sessions.c.id.type))
        .values(last_event_hash=bindparam("h_hash"))
    )


@lru_cache(maxsize=64)
def _append_in_one(
    tables: AcpTables, with_claim: bool, with_id: bool, move_head: bool = True
) -> Executable:
    """PostgreSQL: event, head and idempotency record in one statement (one round trip),
    returning the event's id if asked."""
    inserted = _insert_event(tables)
    if with_id:
        inserted = inserted.returning(tables.events.c.id)
    if not (with_claim or move_head):
        return inserted
    event_cte = inserted.cte("acp_new_event")
    last: Any
    if not with_claim:
        last = _move_head(tables).add_cte(event_cte)
    elif not move_head:
        last = idempotency.insert_statement(tables).add_cte(event_cte)
    else:
        last = idempotency.insert_statement(tables).add_cte(
            event_cte, _move_head(tables).cte("acp_new_head")
        )
    if with_id:
        last = last.returning(select(event_cte.c.id).scalar_subquery().label("id"))
    return cast(Executable, last)


EVENT_COLUMNS = (
    "session_id",
    "seq",
    "kind",
    "action",
    "outcome",
    "reason",
    "cost",
    "payload",
    "created_at",
    "prev_hash",
    "hash",
    "cost_used",
    "actions_used",
    "key_id",
)


def event_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """An event's values as the parameters of the statements that insert it."""
    return {f"e_{name}": values[name] for name in EVENT_COLUMNS}


def event_values(
    slot: Slot, event: NewEvent, now: datetime, key: AuditKey | None
) -> dict[str, Any]:
    """The row of ``event`` in ``slot``, its link keyed with ``key`` (if any) included."""
    return _values(slot.session_id, slot.seq, slot.prev_hash, slot.counters, event, now, key)


def append(
    connection: Connection,
    runtime: Runtime,
    slot: Slot,
    event: NewEvent,
    now: datetime,
    claim: Claim | None = None,
    claim_result: dict[str, Any] | None = None,
    *,
    with_id: bool = False,
) -> dict[str, Any]:
    """Insert the event in ``slot`` (allocated by a session statement), move the session's
    chain head to it and, given a claim, write the idempotency record; return the event's
    values (with its ``id`` if asked). PostgreSQL does all of it in one statement."""
    values = event_values(slot, event, now, runtime.keys.current)
    write(connection, runtime, values, claim, claim_result, with_id=with_id)
    return values


def write(
    connection: Connection,
    runtime: Runtime,
    values: dict[str, Any],
    claim: Claim | None = None,
    claim_result: dict[str, Any] | None = None,
    *,
    with_id: bool = False,
    head_moved: bool = False,
) -> None:
    """Write an event's ``values`` as :func:`append` does. ``head_moved``: the statement
    that allocated its slot already moved the session's chain head to it."""
    now = values["created_at"]
    parameters = event_parameters(values)
    parameters.update(h_session=values["session_id"], h_hash=values["hash"])
    if claim is not None:
        parameters.update(claim.parameters(claim_result or {}, now))
    if runtime.capabilities.writes_in_one_statement:
        statement = _append_in_one(runtime.tables, claim is not None, with_id, not head_moved)
        if with_id:
            values["id"] = fetch(connection, runtime, statement, parameters)[0]["id"]
        else:
            execute(connection, runtime, statement, parameters)
    else:
        if with_id:
            values["id"] = insert_id(connection, runtime, _insert_event(runtime.tables), parameters)
        else:
            execute(connection, runtime, _insert_event(runtime.tables), parameters)
        if not head_moved:
            execute(connection, runtime, _move_head(runtime.tables), parameters)
        if claim is not None:
            execute(connection, runtime, idempotency.insert_statement(runtime.tables), parameters)
    if claim is not None:
        claim.recorded = True
    runtime.memory.remember_head(
        values["session_id"],
        values["seq"] + 1,
        values["hash"],
        (values["cost_used"], values["actions_used"]),
    )


def append_many(
    connection: Connection,
    runtime: Runtime,
    allocated: Sequence[Any],
    event: NewEvent,
    now: datetime,
) -> None:
    if not allocated:
        return
    key = runtime.keys.current
    rows = [
        _values(row.id, row.seq, row.prev_hash, (row.cost_used, row.actions_used), event, now, key)
        for row in allocated
    ]
    connection.execute(insert(runtime.tables.events), rows)
    sessions = runtime.tables.sessions
    connection.execute(
        update(sessions)
        .where(sessions.c.id == bindparam("target"))
        .values(last_event_hash=bindparam("head")),
        [{"target": row["session_id"], "head": row["hash"]} for row in rows],
    )


def to_event(row: Row[Any] | Mapping[str, Any]) -> Event:
    return to_model(Event, row)


def for_session(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, after_seq: int, limit: int
) -> list[Event]:
    events = runtime.tables.events
    query = (
        select(events)
        .where(events.c.session_id == session_id, events.c.seq > after_seq)
        .order_by(events.c.seq)
        .limit(limit)
    )
    return [to_event(row) for row in connection.execute(query)]


def feed(
    connection: Connection,
    runtime: Runtime,
    after_id: int,
    limit: int,
    kind: str | None,
    tenant: str | None = None,
) -> list[Event]:
    events = runtime.tables.events
    query = select(events).where(events.c.id > after_id)
    if kind is not None:
        query = query.where(events.c.kind == kind)
        if kind != "decision":  # the condition of the partial (kind, id) index
            query = query.where(events.c.kind != literal_column("'decision'"))
    if tenant is not None:
        query = query.where(
            events.c.session_id.in_(sessions_of_tenant(runtime.tables.sessions, tenant))
        )
    query = query.order_by(events.c.id).limit(limit)
    return [to_event(row) for row in connection.execute(query)]


def newest_id(connection: Connection, runtime: Runtime, tenant: str | None) -> int | None:
    events = runtime.tables.events
    query = select(func.max(events.c.id))
    if tenant is not None:
        query = query.where(
            events.c.session_id.in_(sessions_of_tenant(runtime.tables.sessions, tenant))
        )
    newest = connection.execute(query).scalar()
    return None if newest is None else int(newest)


@lru_cache(maxsize=32)
def _by_seq(tables: AcpTables) -> Executable:
    events = tables.events
    return select(events).where(
        events.c.session_id == bindparam("s_session", type_=events.c.session_id.type),
        events.c.seq == bindparam("s_seq", type_=events.c.seq.type),
    )


def by_seq(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, seq: int
) -> Event | None:
    rows = fetch(
        connection, runtime, _by_seq(runtime.tables), {"s_session": session_id, "s_seq": seq}
    )
    return to_event(rows[0]) if rows else None


def chain_rows(
    connection: Connection, runtime: Runtime, session_ids: Sequence[uuid.UUID]
) -> Iterator[tuple[uuid.UUID, StoredEvent]]:
    """Every event of these sessions, ordered by session then seq, as the chain sees it."""
    events = runtime.tables.events
    query = (
        select(events)
        .where(events.c.session_id.in_(session_ids))
        .order_by(events.c.session_id, events.c.seq)
    )
    for row in connection.execute(query):
        event = to_event(row)
        yield (
            event.session_id,
            StoredEvent(content=event, prev_hash=event.prev_hash, hash=event.hash),
        )
