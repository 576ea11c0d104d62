"""Session statements: every status and budget rule is a condition in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from agent_control_plane.errors import SessionNotFoundError
from agent_control_plane.models import Session
from agent_control_plane.rules.audit import Counters
from agent_control_plane.rules.lifecycle import LIVE_STATUSES, TERMINAL_STATUSES, Transition
from agent_control_plane.runtime import Runtime, SessionFacts, reading
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.schema.types import Money, UTCDateTime
from agent_control_plane.statuses import SessionStatus
from agent_control_plane.store.dialect import insert_one, update_many, update_one
from agent_control_plane.store.prepared import execute, fetch
from agent_control_plane.store.rows import keyset_page, to_model


@dataclass(frozen=True, slots=True)
class Allocated:
    """A session's state right after a statement allocated it an event seq."""

    id: uuid.UUID
    seq: int
    prev_hash: str | None
    status: str
    expires_at: datetime | None
    actions_used: int
    max_actions: int
    cost_used: Decimal
    max_cost: Decimal


@dataclass(frozen=True, slots=True)
class Placed:
    """An event built for the seq a charge will allocate: the charge moves the chain head
    to it only if the seq, the hash and the counters it was built on are still current."""

    seq: int
    prev_hash: str
    hash: str
    counters: Counters  # the session's, before the charge


def _allocated_columns(tables: AcpTables) -> list[ColumnElement[Any]]:
    s = tables.sessions.c
    return [
        s.id,
        (s.next_seq - 1).label("seq"),
        s.last_event_hash.label("prev_hash"),
        s.status,
        s.expires_at,
        s.actions_used,
        s.max_actions,
        s.cost_used,
        s.max_cost,
    ]


def _allocated(row: Row[Any]) -> Allocated:
    return Allocated(**row._asdict())


def insert_session(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> Session:
    """Insert a new session's row; return the session as stored."""
    return to_session(insert_one(connection, runtime, runtime.tables.sessions, values, "id"))


def facts(connection: Connection, runtime: Runtime, session_id: uuid.UUID) -> SessionFacts:
    s = runtime.tables.sessions.c
    with reading(connection):
        row = connection.execute(
            select(s.policy_id, s.tenant, s.agent_id).where(s.id == session_id)
        ).one_or_none()
    if row is None:
        raise SessionNotFoundError(f"no session {session_id}")
    return SessionFacts(policy_id=row.policy_id, tenant=row.tenant, agent_id=row.agent_id)


@lru_cache(maxsize=32)
def charge_statement(
    tables: AcpTables,
    returning: bool,
    advance_seq: bool = True,
    statuses: tuple[str, ...] = (),
    moves_head: bool = False,
) -> Update:
    """The charge, for sessions in ``statuses`` (default: every live status). With
    ``moves_head``, it also moves the chain head to the event going in the seq it
    allocates, only if that seq and the current head are the ones the event was built on."""
    s = tables.sessions.c
    now = bindparam("p_now", type_=UTCDateTime())
    cost = bindparam("p_cost", type_=Money())
    values: dict[str, Any] = {
        "actions_used": s.actions_used + 1,
        "cost_used": s.cost_used + cost,
        "updated_at": now,
    }
    if statuses != (
        SessionStatus.ACTIVE,
    ):  # an active session stays active: status is left untouched
        values["status"] = SessionStatus.ACTIVE
    statement = (
        update(tables.sessions)
        .where(
            s.id == bindparam("p_session", type_=s.id.type),
            # An OR of equalities, not IN: an IN list would be expanded per execution.
            or_(*(s.status == status for status in statuses or LIVE_STATUSES)),
            or_(s.expires_at.is_(None), s.expires_at > now),
            s.actions_used + 1 <= s.max_actions,
            s.cost_used + cost <= s.max_cost,
        )
        .values(**values)
    )
    if advance_seq:
        statement = statement.values(next_seq=s.next_seq + 1)
    if moves_head:
        statement = statement.where(
            s.next_seq == bindparam("p_seq", type_=s.next_seq.type),
            s.last_event_hash == bindparam("p_prev", type_=s.last_event_hash.type),
            # The event records the counters after the charge: they must be what it assumed.
            s.cost_used == bindparam("p_cost_before", type_=Money()),
            s.actions_used == bindparam("p_actions_before", type_=s.actions_used.type),
        ).values(last_event_hash=bindparam("p_head", type_=s.last_event_hash.type))
    return statement.returning(*_allocated_columns(tables)) if returning else statement


@lru_cache(maxsize=32)
def _allocate(tables: AcpTables, returning: bool, settle: bool) -> Update:
    s = tables.sessions.c
    values: dict[str, Any] = {"next_seq": s.next_seq + 1}
    if settle:
        values["cost_used"] = s.cost_used + bindparam("p_delta", type_=Money())
    statement = (
        update(tables.sessions)
        .where(s.id == bindparam("p_session", type_=s.id.type))
        .values(**values)
    )
    return statement.returning(*_allocated_columns(tables)) if returning else statement


@lru_cache(maxsize=32)
def _read_back(tables: AcpTables) -> Select[Any]:
    s = tables.sessions.c
    return select(*_allocated_columns(tables)).where(
        s.id == bindparam("p_session", type_=s.id.type)
    )


def _run(
    connection: Connection,
    runtime: Runtime,
    build: Callable[[bool], Update],
    parameters: dict[str, Any],
) -> Allocated | None:
    """Run a cached single-session UPDATE; return the allocated state, None if no row.

    Where UPDATE ... RETURNING exists it is one statement; MariaDB reads the row back,
    still locked by the UPDATE."""
    if runtime.capabilities.update_returning:
        rows = fetch(connection, runtime, build(True), parameters)
    elif execute(connection, runtime, build(False), parameters) == 0:
        return None
    else:
        rows = fetch(connection, runtime, _read_back(runtime.tables), parameters)
    return Allocated(**rows[0]) if rows else None


def charge(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    cost: Decimal,
    now: datetime,
    *,
    advance_seq: bool = True,
    head: Placed | None = None,
) -> Allocated | None:
    """Charge one action and ``cost`` and allocate an event seq — only if the session is
    live, unexpired and within both budgets. None means refused (nothing changed).
    ``advance_seq=False`` charges a decision whose seq was already allocated.
    ``head`` (an event built for the seq this allocates) also moves the chain head to that
    event, and refuses unless the seq, previous hash and counters it assumed are current."""
    parameters: dict[str, Any] = {"p_session": session_id, "p_cost": cost, "p_now": now}
    moves_head = head is not None
    if head is not None:
        parameters.update(
            p_seq=head.seq,
            p_prev=head.prev_hash,
            p_head=head.hash,
            p_cost_before=head.counters[0],
            p_actions_before=head.counters[1],
        )
    if not runtime.capabilities.rewrites_unchanged_indexes:
        return _run(
            connection,
            runtime,
            lambda returning: charge_statement(
                runtime.tables, returning, advance_seq, moves_head=moves_head
            ),
            parameters,
        )
    # SQLite rewrites every index on a column an UPDATE sets, even to the same value, and
    # four of the session indexes hold status: so an active session is charged without
    # setting it, and only a session's first action (created -> active) sets it.
    for statuses in ((SessionStatus.ACTIVE,), (SessionStatus.CREATED,)):
        build = partial(
            charge_statement,
            runtime.tables,
            advance_seq=advance_seq,
            statuses=statuses,
            moves_head=moves_head,
        )
        allocated = _run(connection, runtime, build, parameters)
        if allocated is not None:
            return allocated
    return None


def allocate_seq(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    cost_delta: Decimal | None = None,
) -> Allocated:
    """Allocate the next event seq (and optionally settle a cost difference), whatever the
    session's status; return its state after. Raises if the session does not exist."""
    settle = bool(cost_delta)
    allocated = _run(
        connection,
        runtime,
        lambda returning: _allocate(runtime.tables, returning, settle),
        {"p_session": session_id, "p_delta": cost_delta},
    )
    if allocated is None:
        raise SessionNotFoundError(f"no session {session_id}")
    return allocated


def _transitioned(s: Any, change: Transition, now: datetime, reason: str | None) -> dict[str, Any]:
    """The values a transition writes: the new status, an event seq, and the ending."""
    values: dict[str, Any] = {
        "status": change.target,
        "next_seq": s.next_seq + 1,
        "updated_at": now,
    }
    if change.target in TERMINAL_STATUSES:
        values.update(ended_at=now, end_reason=reason)
    return values


def transition(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    change: Transition,
    now: datetime,
    reason: str | None,
) -> Allocated | None:
    sessions = runtime.tables.sessions
    s = sessions.c
    statement = (
        update(sessions)
        .where(s.id == session_id, s.status.in_(change.sources))
        .values(**_transitioned(s, change, now, reason))
    )
    row = update_one(
        connection, runtime, statement, s.id, session_id, _allocated_columns(runtime.tables)
    )
    return None if row is None else _allocated(row)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which sessions a kill reaches: those matching every field given (one session, an
    agent's, a tenant's, an agent's in one tenant); with none given, every session."""

    session_id: uuid.UUID | None = None
    agent_id: str | None = None
    tenant: str | None = None


def _selected(tables: AcpTables, selection: Selection) -> ColumnElement[bool]:
    s = tables.sessions.c
    conditions: list[ColumnElement[bool]] = []
    if selection.session_id is not None:
        conditions.append(s.id == selection.session_id)
    if selection.agent_id is not None:
        conditions.append(s.agent_id == selection.agent_id)
    if selection.tenant is not None:
        conditions.append(s.tenant == selection.tenant)
    return and_(true(), *conditions)


def transition_selected(
    connection: Connection,
    runtime: Runtime,
    selection: Selection,
    change: Transition,
    now: datetime,
    reason: str | None,
) -> list[Allocated]:
    """Apply ``change`` to every selected session it applies to; each gets an event seq."""
    where = _selected(runtime.tables, selection)
    return transition_many(connection, runtime, where, change, now, reason)


def transition_many(
    connection: Connection,
    runtime: Runtime,
    where: ColumnElement[bool],
    change: Transition,
    now: datetime,
    reason: str | None,
) -> list[Allocated]:
    sessions = runtime.tables.sessions
    s = sessions.c
    statement = update(sessions).values(**_transitioned(s, change, now, reason))
    rows = update_many(
        connection,
        runtime,
        statement,
        and_(where, s.status.in_(change.sources)),
        s.id,
        _allocated_columns(runtime.tables),
    )
    return [_allocated(row) for row in rows]


def heartbeat(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, now: datetime
) -> Session:
    sessions = runtime.tables.sessions
    s = sessions.c
    statement = update(sessions).where(s.id == session_id).values(heartbeat_at=now)
    row = update_one(connection, runtime, statement, s.id, session_id, list(s))
    if row is None:
        raise SessionNotFoundError(f"no session {session_id}")
    return to_session(row)


@lru_cache(maxsize=32)
def _get(tables: AcpTables) -> Select[Any]:
    sessions = tables.sessions
    return select(sessions).where(sessions.c.id == bindparam("p_session", type_=sessions.c.id.type))


def get(connection: Connection, runtime: Runtime, session_id: uuid.UUID) -> Session | None:
    row = connection.execute(_get(runtime.tables), {"p_session": session_id}).one_or_none()
    return None if row is None else to_session(row)


def lock(connection: Connection, runtime: Runtime, session_id: uuid.UUID) -> Session | None:
    """The session, its row locked until the transaction ends (waits for any writer)."""
    sessions = runtime.tables.sessions
    query = select(sessions).where(sessions.c.id == session_id).with_for_update()
    row = connection.execute(query).one_or_none()
    return None if row is None else to_session(row)


def status_of(connection: Connection, runtime: Runtime, session_id: uuid.UUID) -> str | None:
    s = runtime.tables.sessions.c
    return connection.execute(select(s.status).where(s.id == session_id)).scalar_one_or_none()


def count(connection: Connection, runtime: Runtime) -> int:
    """How many sessions exist (every status)."""
    query = select(func.count()).select_from(runtime.tables.sessions)
    return int(connection.execute(query).scalar_one())


def to_session(row: Row[Any] | Mapping[str, Any]) -> Session:
    return to_model(Session, row)


def page(
    connection: Connection,
    runtime: Runtime,
    *,
    status: str | None,
    agent_id: str | None,
    tenant: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Session]:
    sessions = runtime.tables.sessions
    query = keyset_page(
        sessions,
        order=sessions.c.created_at,
        after=after,
        limit=limit,
        descending=True,
        status=status,
        agent_id=agent_id,
        tenant=tenant,
    )
    return [to_session(row) for row in connection.execute(query)]
