"""Approval ticket statements: every state change is conditional on the current state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from agent_control_plane.models import Ticket
from agent_control_plane.runtime import Runtime
from agent_control_plane.statuses import TicketStatus
from agent_control_plane.store.rows import keyset_page, sessions_of_tenant, to_model


def to_ticket(row: Row[Any]) -> Ticket:
    return to_model(Ticket, row)


def insert_proposal(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.action_proposals), values)


def insert_ticket(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.approval_tickets), values)


def pending_for(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, action: str, digest: str
) -> uuid.UUID | None:
    t = runtime.tables.approval_tickets.c
    return connection.execute(
        select(t.id)
        .where(t.session_id == session_id, t.action == action, t.args_digest == digest)
        .where(t.status == TicketStatus.PENDING)
        .limit(1)
    ).scalar_one_or_none()


def approved_for(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, action: str, digest: str
) -> list[Ticket]:
    """Approved tickets that may cover this proposal: exact "once" ones first."""
    tickets = runtime.tables.approval_tickets
    t = tickets.c
    query = (
        select(tickets)
        .where(t.session_id == session_id, t.action == action, t.status == TicketStatus.APPROVED)
        .where(or_(t.scope == "session", t.args_digest == digest))
        .order_by(t.scope.desc(), t.decided_at)
    )
    return [to_ticket(row) for row in connection.execute(query)]


def consume_once(
    connection: Connection, runtime: Runtime, ticket_id: uuid.UUID, now: datetime
) -> bool:
    t = runtime.tables.approval_tickets.c
    statement = (
        update(runtime.tables.approval_tickets)
        .where(t.id == ticket_id, t.status == TicketStatus.APPROVED, t.scope == "once")
        .values(
            status=TicketStatus.CONSUMED, consumed_at=now, scope_used_count=t.scope_used_count + 1
        )
    )
    return bool(connection.execute(statement).rowcount)


def consume_scope(
    connection: Connection, runtime: Runtime, ticket_id: uuid.UUID, cost: Decimal, now: datetime
) -> bool:
    """Use one of a session scope's allowances — only within its count, cost and expiry."""
    t = runtime.tables.approval_tickets.c
    statement = (
        update(runtime.tables.approval_tickets)
        .where(
            t.id == ticket_id,
            t.status == TicketStatus.APPROVED,
            t.scope == "session",
            or_(t.scope_max_count.is_(None), t.scope_used_count + 1 <= t.scope_max_count),
            or_(t.scope_max_cost.is_(None), t.scope_used_cost + cost <= t.scope_max_cost),
            or_(t.scope_expires_at.is_(None), t.scope_expires_at > now),
        )
        .values(scope_used_count=t.scope_used_count + 1, scope_used_cost=t.scope_used_cost + cost)
    )
    return bool(connection.execute(statement).rowcount)


def decide(
    connection: Connection,
    runtime: Runtime,
    ticket_id: uuid.UUID,
    values: dict[str, Any],
    now: datetime,
) -> bool:
    """Move a pending, unexpired ticket to approved or denied. False: someone else decided
    first, or it expired."""
    t = runtime.tables.approval_tickets.c
    statement = (
        update(runtime.tables.approval_tickets)
        .where(t.id == ticket_id, t.status == TicketStatus.PENDING)
        .where(or_(t.expires_at.is_(None), t.expires_at > now))
        .values(**values)
    )
    return bool(connection.execute(statement).rowcount)


def get(connection: Connection, runtime: Runtime, ticket_id: uuid.UUID) -> Ticket | None:
    tickets = runtime.tables.approval_tickets
    row = connection.execute(select(tickets).where(tickets.c.id == ticket_id)).one_or_none()
    return None if row is None else to_ticket(row)


def page(
    connection: Connection,
    runtime: Runtime,
    *,
    status: str | None,
    session_id: uuid.UUID | None,
    tenant: str | None = None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Ticket]:
    tickets = runtime.tables.approval_tickets
    query = keyset_page(
        tickets,
        order=tickets.c.requested_at,
        after=after,
        limit=limit,
        status=status,
        session_id=session_id,
    )
    if tenant is not None:
        query = query.where(
            tickets.c.session_id.in_(sessions_of_tenant(runtime.tables.sessions, tenant))
        )
    return [to_ticket(row) for row in connection.execute(query)]


def count(connection: Connection, runtime: Runtime, status: str) -> int:
    """How many tickets have ``status`` (an index range count on (status, expires_at))."""
    tickets = runtime.tables.approval_tickets
    query = select(func.count()).select_from(tickets).where(tickets.c.status == status)
    return int(connection.execute(query).scalar_one())


@dataclass(frozen=True, slots=True)
class Expired:
    id: uuid.UUID
    session_id: uuid.UUID
    action: str


def expire_due(
    connection: Connection, runtime: Runtime, now: datetime, limit: int
) -> list[Expired]:
    """Expire up to ``limit`` overdue pending tickets no other sweep holds; each only once.

    SKIP LOCKED (PostgreSQL, MariaDB): concurrent sweeps split the work instead of
    queueing on, or deadlocking over, the same rows. SQLite sweeps one at a time.
    """
    tickets = runtime.tables.approval_tickets
    t = tickets.c
    due = (
        select(t.id, t.session_id, t.action)
        .where(t.status == TicketStatus.PENDING, t.expires_at.is_not(None), t.expires_at <= now)
        .order_by(t.expires_at, t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [Expired(row.id, row.session_id, row.action) for row in connection.execute(due)]
    if rows:
        connection.execute(
            update(tickets)
            .where(t.id.in_([row.id for row in rows]), t.status == TicketStatus.PENDING)
            .values(status=TicketStatus.EXPIRED, decided_at=now)
        )
    return rows


@dataclass(frozen=True, slots=True)
class Overdue:
    """A pending ticket that waited longer than the escalation delay."""

    id: uuid.UUID
    session_id: uuid.UUID
    action: str
    resource: str | None
    requested_at: datetime
    expires_at: datetime | None


def escalation_due(
    connection: Connection, runtime: Runtime, requested_before: datetime, now: datetime, limit: int
) -> list[Overdue]:
    """Claim up to ``limit`` pending, unexpired, not yet escalated tickets requested before
    ``requested_before`` that no other worker holds (SKIP LOCKED, as for expiry)."""
    t = runtime.tables.approval_tickets.c
    due = (
        select(t.id, t.session_id, t.action, t.resource, t.requested_at, t.expires_at)
        .where(t.status == TicketStatus.PENDING, t.escalated_at.is_(None))
        .where(t.requested_at <= requested_before)
        .where(or_(t.expires_at.is_(None), t.expires_at > now))
        .order_by(t.requested_at, t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [to_model(Overdue, row) for row in connection.execute(due)]


def mark_escalated(
    connection: Connection, runtime: Runtime, ticket_id: uuid.UUID, now: datetime
) -> bool:
    """Record the escalation; False if the ticket was decided or escalated meanwhile."""
    t = runtime.tables.approval_tickets.c
    statement = (
        update(runtime.tables.approval_tickets)
        .where(t.id == ticket_id, t.status == TicketStatus.PENDING, t.escalated_at.is_(None))
        .values(escalated_at=now)
    )
    return bool(connection.execute(statement).rowcount)
