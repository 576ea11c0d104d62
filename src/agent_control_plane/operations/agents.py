"""Agents (capabilities, tags) and delegation between them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import (
    AgentNotFoundError as AgentNotFoundError,
)
from agent_control_plane.errors import (
    InvalidInputError,
)
from agent_control_plane.models import Agent, Delegation
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import lifecycle, validation
from agent_control_plane.rules.lengths import TEXT_LENGTH
from agent_control_plane.runtime import Runtime
from agent_control_plane.statuses import AgentStatus, DelegationStatus, values
from agent_control_plane.store import agents as agent_store
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot

AGENT_STATUSES = values(AgentStatus)
DEFAULT_MAX_DEPTH = 3


def _names(values: Iterable[str], field: str) -> list[str]:
    if not isinstance(values, list | tuple | set | frozenset):
        raise InvalidInputError(field, "must be a list of names")
    return sorted({validation.required_text(value, field) for value in values})


def register_agent(
    connection: Connection,
    runtime: Runtime,
    agent_id: str,
    *,
    name: str | None = None,
    tenant: str | None = None,
    capabilities: Iterable[str] = (),
    tags: Iterable[str] = (),
    status: str = AgentStatus.ACTIVE,
    metadata: dict[str, Any] | None = None,
) -> Agent:
    """Register or update an agent in one atomic upsert; return it."""
    if status not in AGENT_STATUSES:
        raise InvalidInputError("status", f"must be one of {', '.join(AGENT_STATUSES)}")
    values = {
        "id": validation.required_text(agent_id, "agent_id"),
        "name": validation.text(name, "name", optional=True),
        "tenant": validation.text(tenant, "tenant", optional=True),
        "capabilities": _names(capabilities, "capabilities"),
        "tags": _names(tags, "tags"),
        "status": status,
        "metadata": validation.document(metadata, "metadata"),
    }
    with connection.begin():
        now = runtime.clock()
        agent_store.upsert(connection, runtime, {**values, "created_at": now, "updated_at": now})
        agent = agent_store.get(connection, runtime, values["id"])
    assert agent is not None
    return agent


@repeatable
def get_agent(connection: Connection, runtime: Runtime, agent_id: str) -> Agent:
    """The registered agent (AgentNotFoundError if there is none)."""
    with connection.begin():
        agent = agent_store.get(connection, runtime, validation.required_text(agent_id, "agent_id"))
    if agent is None:
        raise AgentNotFoundError(f"no agent {agent_id!r} is registered")
    return agent


def _refusal(
    source: Agent, target: Agent, capability: str | None, depth: int, max_depth: int
) -> str | None:
    if source.status != AgentStatus.ACTIVE:
        return "delegation.from_agent_unavailable"
    if target.status != AgentStatus.ACTIVE:
        return "delegation.to_agent_unavailable"
    if capability is not None and capability not in target.capabilities:
        return f"capability.missing:{capability}"
    if depth > max_depth:
        return "delegation.depth_limit"
    return None


def delegate(
    connection: Connection,
    runtime: Runtime,
    from_agent: str,
    to_agent: str,
    task: str,
    *,
    capability: str | None = None,
    session_id: uuid.UUID | str | None = None,
    parent_id: uuid.UUID | str | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Delegation:
    """Hand ``task`` from one agent to another. Both must be registered and active, the
    receiver must hold ``capability`` (if named), and the chain of delegations must stay
    within ``max_depth``. A refused delegation is recorded too, with its reason; with a
    session, both outcomes are events in its audit trail."""
    source_id = validation.required_text(from_agent, "from_agent")
    target_id = validation.required_text(to_agent, "to_agent")
    work = validation.required_text(task, "task", limit=TEXT_LENGTH)
    needed = validation.text(capability, "capability", optional=True)
    sid = None if session_id is None else validation.session_id(session_id)
    validation.counter(max_depth, "max_depth")
    parent_key = (
        None if parent_id is None else validation.identifier(parent_id, "parent_id", "a delegation")
    )
    with connection.begin():
        now = runtime.clock()
        depth = 1
        if parent_key is not None:
            parent = agent_store.get_delegation(connection, runtime, parent_key)
            if parent is None:
                raise InvalidInputError("parent_id", f"no delegation {parent_key}")
            if parent.to_agent != source_id:
                raise InvalidInputError(
                    "parent_id", f"delegation {parent_key} was handed to {parent.to_agent!r}"
                )
            depth = parent.depth + 1
        source = agent_store.get(connection, runtime, source_id)
        target = agent_store.get(connection, runtime, target_id)
        if source is None or target is None:
            # The foreign keys need registered agents: an unknown one cannot be recorded.
            missing = source_id if source is None else target_id
            raise AgentNotFoundError(f"no agent {missing!r} is registered")
        reason = _refusal(source, target, needed, depth, max_depth)
        delegation_id = uuid.uuid4()
        values = {
            "id": delegation_id,
            "from_agent": source_id,
            "to_agent": target_id,
            "parent_id": parent_key,
            "session_id": sid,
            "task": work,
            "capability": needed,
            "depth": depth,
            "status": DelegationStatus.DENIED if reason else DelegationStatus.ACTIVE,
            "reason": reason,
            "created_at": now,
        }
        agent_store.insert_delegation(connection, runtime, values)
        if sid is not None:
            row = session_store.allocate_seq(connection, runtime, sid)
            if row.status in lifecycle.TERMINAL_STATUSES:
                raise InvalidInputError("session_id", f"session {sid} is {row.status}")
            event_store.append(
                connection,
                runtime,
                Slot.of(row),
                NewEvent(
                    "delegation.denied" if reason else "delegation.created",
                    outcome="denied" if reason else "allowed",
                    reason=reason,
                    payload={
                        "delegation_id": str(delegation_id),
                        "from_agent": source_id,
                        "to_agent": target_id,
                        "capability": needed,
                        "depth": depth,
                        "task": work,
                    },
                ),
                now,
            )
        delegation = agent_store.get_delegation(connection, runtime, delegation_id)
    assert delegation is not None
    return delegation
