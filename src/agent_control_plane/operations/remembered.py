"""What never changes, read once and then remembered: a session's facts, a policy.

The reads are here, not in Runtime or Memory: the memory only keeps what operations read,
so it imports nothing that touches the database."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection

from agent_control_plane.memory import SessionFacts
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.runtime import Runtime, reading
from agent_control_plane.store import policies as policy_store
from agent_control_plane.store import sessions as session_store


def session_facts(connection: Connection, runtime: Runtime, session_id: uuid.UUID) -> SessionFacts:
    """The session's policy, tenant and agent; SessionNotFoundError if there is none."""
    facts = runtime.memory.session_facts(session_id)
    if facts is None:
        facts = session_store.facts(connection, runtime, session_id)
        runtime.memory.remember_session(session_id, facts)
    return facts


def policy(connection: Connection, runtime: Runtime, policy_id: uuid.UUID) -> CompiledPolicy:
    """The stored policy ``policy_id``, compiled."""
    compiled = runtime.memory.policy(policy_id)
    if compiled is None:
        with reading(connection):
            snapshot = policy_store.get(connection, runtime, policy_id)
        compiled = runtime.remember_policy(policy_id, CompiledPolicy.compile(snapshot.document))
    return compiled
