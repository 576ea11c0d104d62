"""Housekeeping that is safe to run from many processes at once.

Every step claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB
(concurrent workers split the work, none waits on another's rows) and works in
bounded batches, one short transaction each; on SQLite, ``BEGIN IMMEDIATE``
serialises the workers instead.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from agent_control_plane.operations import remembered
from agent_control_plane.operations.approvals import expire_batch
from agent_control_plane.operations.batches import drain
from agent_control_plane.operations.tokens import release_expired_batch
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import lifecycle, validation
from agent_control_plane.rules.audit import Anchor, verify_chain
from agent_control_plane.rules.maintenance import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WEBHOOK_TIMEOUT,
    MaintenanceReport,
    MaintenanceSettings,
)
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import approvals as ticket_store
from agent_control_plane.store import events as event_store
from agent_control_plane.store import idempotency, recovery, retention
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot
from agent_control_plane.webhooks import WebhookError, post_json

log = logging.getLogger("agent_control_plane.maintenance")


def _prune_keys_batch(
    connection: Connection, runtime: Runtime, before: datetime, limit: int
) -> int:
    with connection.begin():
        return idempotency.prune(connection, runtime, before, limit)


@repeatable
def prune_idempotency_keys(
    connection: Connection, runtime: Runtime, older_than: timedelta | None = None
) -> int:
    """Delete idempotency records older than ``older_than`` (default: the retention
    setting); return how many. A retry after that is treated as a new request."""
    age = validation.positive_duration(
        runtime.idempotency_retention if older_than is None else older_than, "older_than"
    )
    before = runtime.clock() - age
    return drain(lambda limit: _prune_keys_batch(connection, runtime, before, limit))


def _escalate_batch(
    connection: Connection, runtime: Runtime, settings: MaintenanceSettings, limit: int
) -> tuple[int, int, bool]:
    """Escalate up to ``limit`` overdue tickets: (escalated, claimed, webhook failed).

    The webhook is posted while the ticket is claimed and before it is marked: a failed
    POST leaves it unmarked for the next run; a POST whose commit then fails is sent
    again next run (delivery is at least once)."""
    assert settings.escalate_after is not None
    escalated = 0
    with connection.begin():
        now = runtime.clock()
        due = ticket_store.escalation_due(
            connection, runtime, now - settings.escalate_after, now, limit
        )
        # Session rows are locked in one order by every sweep: no cycles between them.
        for ticket in sorted(due, key=lambda t: (t.session_id, t.id)):
            waited = (now - ticket.requested_at).total_seconds()
            if settings.webhook_url is not None:
                facts = remembered.session_facts(connection, runtime, ticket.session_id)
                body = {
                    "type": "approval.escalated",
                    "ticket_id": str(ticket.id),
                    "session_id": str(ticket.session_id),
                    "agent_id": facts.agent_id,
                    "tenant": facts.tenant,
                    "action": ticket.action,
                    "resource": ticket.resource,
                    "requested_at": ticket.requested_at.isoformat(),
                    "expires_at": None
                    if ticket.expires_at is None
                    else ticket.expires_at.isoformat(),
                    "escalated_at": now.isoformat(),
                    "waited_seconds": waited,
                }
                try:
                    post_json(settings.webhook_url, body, settings.webhook_timeout)
                except WebhookError as exc:
                    log.warning("escalation of ticket %s is retried next run: %s", ticket.id, exc)
                    return escalated, len(due), True
            if not ticket_store.mark_escalated(connection, runtime, ticket.id, now):
                continue
            row = session_store.allocate_seq(connection, runtime, ticket.session_id)
            event_store.append(
                connection,
                runtime,
                Slot.of(row),
                NewEvent(
                    "approval.escalated",
                    ticket.action,
                    "pending",
                    payload={
                        "ticket_id": str(ticket.id),
                        "waited_seconds": waited,
                        "notified": settings.webhook_url is not None,
                    },
                ),
                now,
            )
            escalated += 1
    return escalated, len(due), False


def _escalate(
    connection: Connection, runtime: Runtime, settings: MaintenanceSettings
) -> tuple[int, int]:
    """Escalate every overdue ticket; (escalated, webhook failures). Stops at the first
    failed POST: the endpoint is down, the rest waits for the next run."""
    total = 0
    while True:
        escalated, claimed, failed = _escalate_batch(
            connection, runtime, settings, settings.batch_size
        )
        total += escalated
        if failed:
            return total, 1
        if claimed < settings.batch_size:
            return total, 0


def _recover_batch(
    connection: Connection, runtime: Runtime, settings: MaintenanceSettings, limit: int
) -> int:
    assert settings.heartbeat_timeout is not None
    change = lifecycle.STALE[settings.on_stale]
    with connection.begin():
        now = runtime.clock()
        cutoff = now - settings.heartbeat_timeout
        claimed = recovery.claim_stale(connection, runtime, cutoff, limit)
        rows = recovery.recover(
            connection, runtime, claimed, change, cutoff, now, lifecycle.STALE_REASON
        )
        event_store.append_many(
            connection,
            runtime,
            rows,
            NewEvent(
                change.event,
                reason=lifecycle.STALE_REASON,
                payload={
                    "status": change.target,
                    "scope": "heartbeat",
                    "heartbeat_timeout_seconds": settings.heartbeat_timeout.total_seconds(),
                },
            ),
            now,
        )
    return len(rows)


def _prune_events(
    connection: Connection, runtime: Runtime, settings: MaintenanceSettings
) -> tuple[int, int, int]:
    """Prune terminal sessions' events older than the retention; (events, sessions,
    sessions refused). A chain that does not verify is never pruned: pruning must not
    erase the evidence of tampering."""
    assert settings.event_retention is not None
    events = sessions = refused = 0
    after: uuid.UUID | None = None
    while True:
        with connection.begin():
            now = runtime.clock()
            cutoff = now - settings.event_retention
            claimed = retention.claim_prunable(
                connection, runtime, cutoff, after, settings.batch_size
            )
            for session in claimed:
                last = retention.last_old_seq(connection, runtime, session.id, cutoff)
                if last is None or last <= session.anchor.seq:
                    continue
                chain = retention.chain_until(connection, runtime, session.id, last)
                # Any intact chain may go: its keyed links must verify, unkeyed ones may stay.
                problems = verify_chain(
                    session.id, chain, last, None, session.anchor, keys=runtime.keys
                )
                if problems:
                    log.warning(
                        "not pruning session %s: its audit chain does not verify (%s)",
                        session.id,
                        "; ".join(f"{p.problem} at {p.seq}" for p in problems[:5]),
                    )
                    refused += 1
                    continue
                anchor = Anchor(last, chain[-1].hash, chain[-1].content.counters)
                events += retention.prune_until(connection, runtime, session.id, anchor, now)
                sessions += 1
        if len(claimed) < settings.batch_size:
            return events, sessions, refused
        after = claimed[-1].id


@repeatable
def run_maintenance(
    connection: Connection,
    runtime: Runtime,
    *,
    escalate_after: timedelta | str | None = None,
    webhook_url: str | None = None,
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
    heartbeat_timeout: timedelta | str | None = None,
    on_stale: str = "pause",
    event_retention: timedelta | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> MaintenanceReport:
    """Run every housekeeping step once; safe from any number of workers at once.

    Always: expire overdue approval tickets, release expired token holds, prune
    idempotency records past their retention. With ``escalate_after`` (a timedelta or
    "30m"): record an ``approval.escalated`` event on pending tickets that waited that
    long, POSTing JSON to ``webhook_url`` first if given (a failed POST is logged and
    retried next run). With ``heartbeat_timeout``: pause (``on_stale="pause"``) or abort
    (``"abort"``) active sessions silent for that long. With ``event_retention``: delete
    terminal sessions' older events, keeping an anchor that ``verify_audit`` checks from.
    Each step works in transactions of at most ``batch_size`` rows.
    """
    settings = MaintenanceSettings.of(
        escalate_after=escalate_after,
        webhook_url=webhook_url,
        webhook_timeout=webhook_timeout,
        heartbeat_timeout=heartbeat_timeout,
        on_stale=on_stale,
        event_retention=event_retention,
        batch_size=batch_size,
    )
    size = settings.batch_size
    expired = drain(lambda limit: expire_batch(connection, runtime, limit), size)
    escalated, failures = (
        _escalate(connection, runtime, settings) if settings.escalate_after else (0, 0)
    )
    released = drain(lambda limit: release_expired_batch(connection, runtime, limit), size)
    recovered = 0
    if settings.heartbeat_timeout is not None:
        recovered = drain(lambda limit: _recover_batch(connection, runtime, settings, limit), size)
    before = runtime.clock() - runtime.idempotency_retention
    keys = drain(lambda limit: _prune_keys_batch(connection, runtime, before, limit), size)
    pruned = (0, 0, 0)
    if settings.event_retention is not None:
        pruned = _prune_events(connection, runtime, settings)
    return MaintenanceReport(
        tickets_expired=expired,
        tickets_escalated=escalated,
        webhook_failures=failures,
        holds_released=released,
        sessions_paused=recovered if settings.on_stale == "pause" else 0,
        sessions_aborted=recovered if settings.on_stale == "abort" else 0,
        idempotency_keys_pruned=keys,
        events_pruned=pruned[0],
        sessions_pruned=pruned[1],
        sessions_not_pruned=pruned[2],
    )
