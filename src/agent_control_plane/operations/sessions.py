"""Sessions: open, read, list, lifecycle changes, heartbeat and the kill switch."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import (
    InvalidInputError,
    InvalidTransitionError,
    SessionNotFoundError,
)
from agent_control_plane.models import Page, Session
from agent_control_plane.operations import remembered
from agent_control_plane.operations.kills import refuse_if_killed
from agent_control_plane.operations.once import run_once, scope
from agent_control_plane.operations.policies import PolicySource, resolve_policy
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import lifecycle, pages, validation
from agent_control_plane.rules.audit import ZERO
from agent_control_plane.runtime import Runtime, SessionFacts
from agent_control_plane.schema.tables import SESSION_STATUSES
from agent_control_plane.statuses import SessionStatus
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot
from agent_control_plane.store.idempotency import Claim


def open_session(
    connection: Connection,
    runtime: Runtime,
    name: str | None = None,
    *,
    agent_id: str,
    tenant: str | None = None,
    policy: PolicySource,
    max_cost: Decimal | int | str,
    max_actions: int,
    expires_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Session:
    """Open a session for ``agent_id`` under ``policy`` (a document, a YAML/JSON path or a
    stored policy id), with a cost budget (exact USD) and an action budget, neither above
    the policy's ``limits``."""
    values = {
        "name": validation.text(name, "name", optional=True),
        "agent_id": validation.required_text(agent_id, "agent_id"),
        "tenant": validation.text(tenant, "tenant", optional=True),
        "max_cost": validation.money(max_cost, "max_cost"),
        "max_actions": validation.counter(max_actions, "max_actions"),
        "expires_at": validation.aware(expires_at, "expires_at"),
        "metadata": validation.document(metadata, "metadata"),
    }
    key = validation.idempotency_key(idempotency_key)
    policy_id = resolve_policy(connection, runtime, policy)
    excess = remembered.policy(connection, runtime, policy_id).document.limits.excess(
        values["max_cost"], values["max_actions"]
    )
    if excess is not None:
        raise InvalidInputError(*excess)
    request = {**values, "policy_id": str(policy_id), "expires_at": str(expires_at)}

    def work(_claim: Claim | None) -> tuple[Session, dict[str, Any]]:
        refuse_if_killed(connection, runtime, values["tenant"], values["agent_id"])
        now = runtime.clock()
        session_id = uuid.uuid4()
        payload = {
            "name": values["name"],
            "agent_id": values["agent_id"],
            "tenant": values["tenant"],
            "policy_id": str(policy_id),
            "max_cost": str(values["max_cost"]),
            "max_actions": values["max_actions"],
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        }
        opened = event_store.event_values(
            Slot(session_id, 1, None, ZERO),
            NewEvent("session.opened", payload=payload),
            now,
            runtime.keys.current,
        )
        row = {
            **values,
            "id": session_id,
            "policy_id": policy_id,
            "status": SessionStatus.CREATED,
            "cost_used": Decimal(0),
            "actions_used": 0,
            "next_seq": 2,
            # The chain head starts at the opening event, written next in this transaction.
            "last_event_hash": opened["hash"],
            "created_at": now,
            "updated_at": now,
        }
        session = session_store.insert_session(connection, runtime, row)
        event_store.write(connection, runtime, opened, head_moved=True)
        return session, {"session_id": str(session_id)}

    def replay(data: dict[str, Any]) -> Session:
        return get_session(connection, runtime, data["session_id"])

    session = run_once(
        connection,
        runtime,
        work,
        replay,
        scope=scope("open_session", values["tenant"]),
        key=key,
        request=request,
    )
    runtime.memory.remember_session(
        session.id, SessionFacts(session.policy_id, session.tenant, session.agent_id)
    )
    return session


@repeatable
def get_session(connection: Connection, runtime: Runtime, session_id: uuid.UUID | str) -> Session:
    """The session's current state (SessionNotFoundError if there is none)."""
    sid = validation.session_id(session_id)
    with connection.begin():
        session = session_store.get(connection, runtime, sid)
    if session is None:
        raise SessionNotFoundError(f"no session {sid}")
    return session


@repeatable
def list_sessions(
    connection: Connection,
    runtime: Runtime,
    *,
    status: str | None = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Session]:
    """Sessions newest first, filtered; pass ``next_cursor`` back for the next page."""
    if status is not None and status not in SESSION_STATUSES:
        raise InvalidInputError("status", f"must be one of {', '.join(SESSION_STATUSES)}")
    agent_id = validation.text(agent_id, "agent_id", optional=True)
    tenant = validation.text(tenant, "tenant", optional=True)
    limit = pages.page_limit(limit)
    after = pages.decode(cursor, "list_sessions")
    with connection.begin():
        items = session_store.page(
            connection,
            runtime,
            status=status,
            agent_id=agent_id,
            tenant=tenant,
            after=after,
            limit=limit + 1,
        )
    return pages.page(items, limit, lambda session: (session.created_at, session.id))


def _change(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    change: lifecycle.Transition,
    reason: str | None,
) -> Session:
    sid = validation.session_id(session_id)
    reason = validation.text(reason, "reason", optional=True)
    with connection.begin():
        now = runtime.clock()
        row = session_store.transition(connection, runtime, sid, change, now, reason)
        if row is None:
            status = session_store.status_of(connection, runtime, sid)
            if status is None:
                raise SessionNotFoundError(f"no session {sid}")
            raise InvalidTransitionError(
                f"cannot {change.name} session {sid}: it is {status}"
                + (
                    " (a terminal session never reopens)"
                    if status in lifecycle.TERMINAL_STATUSES
                    else ""
                )
            )
        event_store.append(
            connection,
            runtime,
            Slot.of(row),
            NewEvent(change.event, reason=reason, payload={"status": change.target}),
            now,
        )
        session = session_store.get(connection, runtime, sid)
    assert session is not None
    return session


def pause_session(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID | str, reason: str | None = None
) -> Session:
    """Pause an active session: its agent is refused until it is resumed."""
    return _change(connection, runtime, session_id, lifecycle.PAUSE, reason)


def resume_session(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID | str, reason: str | None = None
) -> Session:
    """Resume a paused session."""
    return _change(connection, runtime, session_id, lifecycle.RESUME, reason)


def complete_session(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID | str, reason: str | None = None
) -> Session:
    """Mark the session completed; it never reopens."""
    return _change(connection, runtime, session_id, lifecycle.COMPLETE, reason)


@repeatable
def heartbeat(connection: Connection, runtime: Runtime, session_id: uuid.UUID | str) -> Session:
    """Record that the agent is alive and return the session: ``.killed`` tells it to stop."""
    sid = validation.session_id(session_id)
    with connection.begin():
        return session_store.heartbeat(connection, runtime, sid, runtime.clock())
