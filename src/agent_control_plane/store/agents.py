"""Agent and delegation statements; registering is one atomic upsert."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from agent_control_plane.models import Agent, Delegation
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import dialect
from agent_control_plane.store.rows import to_model


def upsert(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    """Insert the agent, or update everything but its creation time, in one statement."""
    agents = runtime.tables.agents
    changes = {k: v for k, v in values.items() if k not in ("id", "created_at")}
    connection.execute(dialect.upsert(runtime, agents, values, ("id",), changes))


def get(connection: Connection, runtime: Runtime, agent_id: str) -> Agent | None:
    agents = runtime.tables.agents
    row = connection.execute(select(agents).where(agents.c.id == agent_id)).one_or_none()
    return None if row is None else to_model(Agent, row)


def insert_delegation(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.delegations), values)


def get_delegation(
    connection: Connection, runtime: Runtime, delegation_id: uuid.UUID
) -> Delegation | None:
    delegations = runtime.tables.delegations
    row = connection.execute(
        select(delegations).where(delegations.c.id == delegation_id)
    ).one_or_none()
    return None if row is None else to_model(Delegation, row)
