"""Human approvals: tickets, approve/deny (exactly one decision wins), expiry, waiting."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import (
    InvalidInputError,
    InvalidTransitionError,
)
from agent_control_plane.errors import (
    TicketNotFoundError as TicketNotFoundError,
)
from agent_control_plane.models import Page, Ticket
from agent_control_plane.operations.batches import drain
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import pages, validation
from agent_control_plane.rules.approvals import (
    DEFAULT_TIMEOUT,
    SCOPES,
    ScopeLimits,
    covers_resource,
    proposal_digest,
)
from agent_control_plane.rules.lengths import TEXT_LENGTH
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.runtime import Runtime, reading
from agent_control_plane.schema.tables import TICKET_STATUSES
from agent_control_plane.statuses import TicketStatus
from agent_control_plane.store import approvals as ticket_store
from agent_control_plane.store import events as event_store
from agent_control_plane.store import idempotency
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.sessions import Allocated

# A refused ticket answers the keyed request that opened it for good.
FINAL_REFUSALS = (TicketStatus.DENIED, TicketStatus.EXPIRED)


def use_approval(
    connection: Connection,
    runtime: Runtime,
    row: Allocated,
    proposal: Proposal,
    now: datetime,
) -> tuple[Allocated, uuid.UUID, str] | None:
    """Consume an approval covering ``proposal`` and charge it; None if there is none.

    Called inside govern's transaction after the session row is locked and checked
    (live, within budget), so consuming and charging happen together or not at all.
    """
    digest = proposal_digest(proposal)
    for ticket in ticket_store.approved_for(connection, runtime, row.id, proposal.action, digest):
        if ticket.scope == "once":
            used = ticket.args_digest == digest and ticket_store.consume_once(
                connection, runtime, ticket.id, now
            )
        else:
            used = covers_resource(ticket.scope_resources, proposal.resource) and (
                ticket_store.consume_scope(connection, runtime, ticket.id, proposal.cost, now)
            )
        if used:
            charged = session_store.charge(
                connection, runtime, row.id, proposal.cost, now, advance_seq=False
            )
            assert charged is not None, "the session row is locked and was checked"
            return charged, ticket.id, f"approval.{ticket.scope}:{ticket.id}"
    return None


def request_approval(
    connection: Connection,
    runtime: Runtime,
    row: Allocated,
    policy_id: uuid.UUID,
    policy: CompiledPolicy,
    proposal: Proposal,
    reason: str,
    now: datetime,
) -> uuid.UUID:
    """The pending ticket for this exact proposal, created if there is none yet."""
    digest = proposal_digest(proposal)
    existing = ticket_store.pending_for(connection, runtime, row.id, proposal.action, digest)
    if existing is not None:
        return existing
    proposal_id, ticket_id = uuid.uuid4(), uuid.uuid4()
    ticket_store.insert_proposal(
        connection,
        runtime,
        {
            "id": proposal_id,
            "session_id": row.id,
            "policy_id": policy_id,
            "event_seq": row.seq,
            "action": proposal.action,
            "resource": proposal.resource,
            "args": proposal.args,
            "args_digest": digest,
            "cost": proposal.cost,
            "weight": proposal.weight,
            "score": proposal.score,
            "outcome": "needs_approval",
            "reason": reason,
            "status": TicketStatus.PENDING,
            "created_at": now,
        },
    )
    timeout = policy.document.approval_timeout or DEFAULT_TIMEOUT
    ticket_store.insert_ticket(
        connection,
        runtime,
        {
            "id": ticket_id,
            "session_id": row.id,
            "proposal_id": proposal_id,
            "policy_id": policy_id,
            "action": proposal.action,
            "resource": proposal.resource,
            "args_digest": digest,
            "status": TicketStatus.PENDING,
            "scope_used_cost": Decimal(0),
            "scope_used_count": 0,
            "requested_at": now,
            "expires_at": now + timeout,
        },
    )
    return ticket_id


def _binding(claim: Claim) -> Claim:
    return Claim(f"ticket.{claim.scope}", claim.key, claim.request_digest)


def bound_ticket(connection: Connection, runtime: Runtime, claim: Claim) -> Ticket | None:
    """The ticket an earlier govern with this idempotency key opened, if any."""
    stored = idempotency.find(connection, runtime, _binding(claim).scope, claim.key)
    if stored is None:
        return None
    return ticket_store.get(connection, runtime, uuid.UUID(stored.result["ticket_id"]))


def bind_ticket(
    connection: Connection, runtime: Runtime, claim: Claim, ticket_id: uuid.UUID, now: datetime
) -> None:
    """Remember which ticket this keyed govern waits on, in govern's own transaction."""
    idempotency.record(connection, runtime, _binding(claim), {"ticket_id": str(ticket_id)}, now)


def _ticket_id(value: Any) -> uuid.UUID:
    return validation.identifier(value, "ticket_id", "an approval ticket")


def _decide(
    connection: Connection,
    runtime: Runtime,
    ticket_id: uuid.UUID,
    values: dict[str, Any],
    event: str,
    payload: dict[str, Any],
) -> Ticket:
    with connection.begin():
        now = runtime.clock()
        if not ticket_store.decide(
            connection, runtime, ticket_id, {**values, "decided_at": now}, now
        ):
            ticket = ticket_store.get(connection, runtime, ticket_id)
            if ticket is None:
                raise TicketNotFoundError(f"no approval ticket {ticket_id}")
            state = TicketStatus.EXPIRED if ticket.pending else ticket.status
            raise InvalidTransitionError(
                f"ticket {ticket_id} is already {state}: a decision on it is final"
            )
        ticket = ticket_store.get(connection, runtime, ticket_id)
        assert ticket is not None
        row = session_store.allocate_seq(connection, runtime, ticket.session_id)
        event_store.append(
            connection,
            runtime,
            Slot.of(row),
            NewEvent(event, ticket.action, values["status"], payload=payload),
            now,
        )
    return ticket


def approve(
    connection: Connection,
    runtime: Runtime,
    ticket_id: uuid.UUID | str,
    by: str,
    *,
    scope: str = "once",
    scope_limits: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Ticket:
    """Approve a pending ticket. ``scope="once"`` covers the identical action once;
    ``scope="session"`` covers that action in the session within ``scope_limits``
    (resources, max_cost, max_count, expires_at; 0 means zero, absent means no limit).
    Exactly one of several concurrent decisions wins; the others raise."""
    tid = _ticket_id(ticket_id)
    approver = validation.required_text(by, "by")
    if scope not in SCOPES:
        raise InvalidInputError("scope", f"must be one of {', '.join(SCOPES)}")
    if scope == "once" and scope_limits:
        raise InvalidInputError("scope_limits", "only a session scope takes limits")
    limits = ScopeLimits.parse(scope_limits)
    note = validation.text(reason, "reason", limit=TEXT_LENGTH, optional=True)
    values = {
        "status": TicketStatus.APPROVED,
        "scope": scope,
        "decided_by": approver,
        "decision_reason": note,
        "scope_resources": limits.resources,
        "scope_max_cost": limits.max_cost,
        "scope_max_count": limits.max_count,
        "scope_expires_at": limits.expires_at,
    }
    payload = {
        "ticket_id": str(tid),
        "by": approver,
        "scope": scope,
        "reason": note,
        "limits": validation.document(
            {
                "resources": limits.resources,
                "max_cost": None if limits.max_cost is None else str(limits.max_cost),
                "max_count": limits.max_count,
                "expires_at": None if limits.expires_at is None else limits.expires_at.isoformat(),
            },
            "scope_limits",
        ),
    }
    return _decide(connection, runtime, tid, values, "approval.approved", payload)


def deny(
    connection: Connection, runtime: Runtime, ticket_id: uuid.UUID | str, by: str, reason: str
) -> Ticket:
    """Deny a pending ticket; final. The agent's next identical call needs a new approval."""
    tid = _ticket_id(ticket_id)
    approver = validation.required_text(by, "by")
    note = validation.required_text(reason, "reason", limit=TEXT_LENGTH)
    values = {"status": TicketStatus.DENIED, "decided_by": approver, "decision_reason": note}
    payload = {"ticket_id": str(tid), "by": approver, "reason": note}
    return _decide(connection, runtime, tid, values, "approval.denied", payload)


@repeatable
def get_ticket(connection: Connection, runtime: Runtime, ticket_id: uuid.UUID | str) -> Ticket:
    """The ticket's current state (TicketNotFoundError if there is none)."""
    tid = _ticket_id(ticket_id)
    with connection.begin():
        ticket = ticket_store.get(connection, runtime, tid)
    if ticket is None:
        raise TicketNotFoundError(f"no approval ticket {tid}")
    return ticket


@repeatable
def list_tickets(
    connection: Connection,
    runtime: Runtime,
    *,
    status: str | None = None,
    session_id: uuid.UUID | str | None = None,
    tenant: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Ticket]:
    """Tickets oldest first (the approval queue), filtered (``tenant``: of that tenant's
    sessions); keyset pages."""
    if status is not None and status not in TICKET_STATUSES:
        raise InvalidInputError("status", f"must be one of {', '.join(TICKET_STATUSES)}")
    limit = pages.page_limit(limit)
    sid = None if session_id is None else validation.session_id(session_id)
    tenant = validation.text(tenant, "tenant", optional=True)
    after = pages.decode(cursor, "list_tickets")
    with connection.begin():
        items = ticket_store.page(
            connection,
            runtime,
            status=status,
            session_id=sid,
            tenant=tenant,
            after=after,
            limit=limit + 1,
        )
    return pages.page(items, limit, lambda ticket: (ticket.requested_at, ticket.id))


@repeatable
def count_tickets(
    connection: Connection, runtime: Runtime, status: str = TicketStatus.PENDING
) -> int:
    """How many tickets have ``status`` (default: the pending approval queue's length)."""
    if status not in TICKET_STATUSES:
        raise InvalidInputError("status", f"must be one of {', '.join(TICKET_STATUSES)}")
    with reading(connection):
        return ticket_store.count(connection, runtime, status)


def expire_batch(connection: Connection, runtime: Runtime, limit: int) -> int:
    """Expire up to ``limit`` overdue pending tickets, one event each, in one transaction."""
    with connection.begin():
        now = runtime.clock()
        # Session rows are locked in one order by every sweep: no cycles between them.
        expired = sorted(
            ticket_store.expire_due(connection, runtime, now, limit),
            key=lambda r: (r.session_id, r.id),
        )
        for ticket in expired:
            row = session_store.allocate_seq(connection, runtime, ticket.session_id)
            event_store.append(
                connection,
                runtime,
                Slot.of(row),
                NewEvent(
                    "approval.expired",
                    ticket.action,
                    "expired",
                    payload={"ticket_id": str(ticket.id)},
                ),
                now,
            )
    return len(expired)


@repeatable
def expire_tickets(connection: Connection, runtime: Runtime) -> int:
    """Expire every overdue pending ticket, with one event each; safe from many processes
    at once (each ticket is expired by exactly one sweep). Returns how many."""
    return drain(lambda limit: expire_batch(connection, runtime, limit))
