"""The kill switch: stop a session, or an agent's, a tenant's or every session and bar
new ones in that scope until the kill is lifted."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import KilledScopeError, SessionNotFoundError
from agent_control_plane.models import StandingKill
from agent_control_plane.operations.traits import repeatable, urgent
from agent_control_plane.rules import lifecycle, validation
from agent_control_plane.runtime import Runtime
from agent_control_plane.statuses import KillScope, SessionStatus
from agent_control_plane.store import events as event_store
from agent_control_plane.store import kills as kill_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent
from agent_control_plane.store.kills import ANY, EVERYTHING, Scope
from agent_control_plane.store.sessions import Selection


def _kill_selected(
    connection: Connection,
    runtime: Runtime,
    selection: Selection,
    reason: str | None,
    by: str | None,
    scope_payload: dict[str, Any],
    standing: Scope | None = None,
) -> int:
    reason = validation.text(reason, "reason", optional=True)
    by = validation.text(by, "by", optional=True)
    payload: dict[str, Any] = {"status": SessionStatus.ABORTED.value, **scope_payload}
    if by is not None:
        payload["by"] = by
    with connection.begin():
        now = runtime.clock()
        if standing is not None:
            # Waits for sessions being opened right now: the sweep below then sees them.
            kill_store.lock_everything(connection, runtime, exclusive=True)
            kill_store.activate(connection, runtime, standing, reason, by, now)
        rows = session_store.transition_selected(
            connection, runtime, selection, lifecycle.KILL, now, reason
        )
        event_store.append_many(
            connection,
            runtime,
            rows,
            NewEvent(lifecycle.KILL.event, reason=reason, payload=payload),
            now,
        )
    return len(rows)


@urgent
@repeatable
def kill_session(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    reason: str | None = None,
    *,
    by: str | None = None,
) -> int:
    """Stop the session now (paused included); return 1 if it was stopped, 0 if already ended.
    ``by`` names who did it in the audit trail (the gateway records the API key)."""
    sid = validation.session_id(session_id)
    selection = Selection(session_id=sid)
    stopped = _kill_selected(connection, runtime, selection, reason, by, {"scope": "session"})
    if stopped == 0:
        with connection.begin():
            if session_store.status_of(connection, runtime, sid) is None:
                raise SessionNotFoundError(f"no session {sid}")
    return stopped


@urgent
@repeatable
def kill_agent(
    connection: Connection,
    runtime: Runtime,
    agent_id: str,
    reason: str | None = None,
    *,
    tenant: str | None = None,
    by: str | None = None,
) -> int:
    """Stop every open session of ``agent_id`` (only those of ``tenant``, if given) and bar
    new ones until ``lift_kill(agent_id=…)``; return how many were stopped."""
    agent = validation.required_text(agent_id, "agent_id")
    tenant = validation.text(tenant, "tenant", optional=True)
    selection = Selection(agent_id=agent, tenant=tenant)
    scope_payload: dict[str, Any] = {"scope": "agent", "agent_id": agent}
    if tenant is not None:
        scope_payload["tenant"] = tenant
    standing = Scope(KillScope.AGENT, tenant or ANY, agent)
    return _kill_selected(connection, runtime, selection, reason, by, scope_payload, standing)


@urgent
@repeatable
def kill_tenant(
    connection: Connection,
    runtime: Runtime,
    tenant: str,
    reason: str | None = None,
    *,
    by: str | None = None,
) -> int:
    """Stop every open session of ``tenant`` and bar new ones until
    ``lift_kill(tenant=…)``; return how many were stopped."""
    name = validation.required_text(tenant, "tenant")
    payload = {"scope": "tenant", "tenant": name}
    return _kill_selected(
        connection,
        runtime,
        Selection(tenant=name),
        reason,
        by,
        payload,
        Scope(KillScope.TENANT, name),
    )


@urgent
@repeatable
def kill_all(
    connection: Connection, runtime: Runtime, reason: str | None = None, *, by: str | None = None
) -> int:
    """Stop every open session in this database and bar new ones until ``lift_kill()``;
    return how many were stopped."""
    return _kill_selected(
        connection, runtime, Selection(), reason, by, {"scope": "all"}, EVERYTHING
    )


def _scope_of(agent_id: str | None, tenant: str | None) -> Scope:
    agent = validation.text(agent_id, "agent_id", optional=True)
    name = validation.text(tenant, "tenant", optional=True)
    if agent is not None:
        return Scope(KillScope.AGENT, name or ANY, agent)
    if name is not None:
        return Scope(KillScope.TENANT, name)
    return EVERYTHING


@repeatable
def lift_kill(
    connection: Connection,
    runtime: Runtime,
    *,
    agent_id: str | None = None,
    tenant: str | None = None,
    by: str | None = None,
) -> bool:
    """Lift the standing kill made by ``kill_agent(agent_id, tenant=…)``,
    ``kill_tenant(tenant)`` or, with neither, ``kill_all()``: new sessions may open again
    (stopped sessions stay stopped). ``by`` is kept as who lifted it. Return whether such
    a kill was standing."""
    standing = _scope_of(agent_id, tenant)
    lifted_by = validation.text(by, "by", optional=True)
    with connection.begin():
        return kill_store.lift(connection, runtime, standing, lifted_by, runtime.clock())


@repeatable
def list_kills(
    connection: Connection, runtime: Runtime, *, include_lifted: bool = False
) -> list[StandingKill]:
    """The standing kills of agents, tenants or everything (and, if asked, lifted ones)."""
    with connection.begin():
        return kill_store.every(connection, runtime, active_only=not include_lifted)


def refuse_if_killed(
    connection: Connection, runtime: Runtime, tenant: str | None, agent_id: str
) -> None:
    """Inside a session opening's transaction: raise KilledScopeError if a standing kill
    covers the new session (no kill can commit between this check and the opening's
    commit)."""
    kill_store.lock_everything(connection, runtime, exclusive=False)
    found = kill_store.standing(connection, runtime, tenant, agent_id)
    if found:
        kill = found[0]
        raise KilledScopeError(
            f"{kill.target} was killed at {kill.killed_at} (reason: {kill.reason or 'none'}): "
            f"no session of agent {agent_id!r} opens until an operator lifts the kill "
            "(lift_kill, or acp kill --lift)"
        )
