"""Checks that need the session's history or its agent, run under the session row lock."""

from __future__ import annotations

import fnmatch
from datetime import datetime

from sqlalchemy.engine import Connection

from agent_control_plane.rules.policy import DenyAfter, Limit, PolicyDocument
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import Outcome
from agent_control_plane.runtime import Runtime, SessionFacts
from agent_control_plane.statuses import AgentStatus
from agent_control_plane.store import agents as agent_store
from agent_control_plane.store import history
from agent_control_plane.store.sessions import Allocated


def _capability_refusal(
    connection: Connection,
    runtime: Runtime,
    policy: PolicyDocument,
    facts: SessionFacts,
    action: str,
) -> str | None:
    required = next(
        (
            cap
            for pattern, cap in policy.capabilities.items()
            if fnmatch.fnmatchcase(action, pattern)
        ),
        None,
    )
    if required is None:
        return None
    agent = agent_store.get(connection, runtime, facts.agent_id)
    if agent is None:
        return "agent.unregistered"
    if agent.status != AgentStatus.ACTIVE:
        return "agent.disabled"
    if required not in agent.capabilities:
        return f"capability.missing:{required}"
    return None


def _sequence_refusal(
    connection: Connection,
    runtime: Runtime,
    policy: PolicyDocument,
    row: Allocated,
    action: str,
    now: datetime,
) -> str | None:
    for rule in policy.sequences:
        if isinstance(rule, DenyAfter) and fnmatch.fnmatchcase(action, rule.deny):
            since = None if rule.within is None else now - rule.within
            if history.count_decisions(connection, runtime, row.id, rule.after, "allowed", since):
                return f"sequence.after:{rule.after}"
        elif isinstance(rule, Limit) and fnmatch.fnmatchcase(action, rule.limit):
            used = history.count_decisions(
                connection, runtime, row.id, rule.limit, "allowed", now - rule.per
            )
            if used >= rule.max:
                return f"sequence.limit:{rule.limit}"
    return None


def history_refusal(
    connection: Connection,
    runtime: Runtime,
    policy: PolicyDocument,
    facts: SessionFacts,
    row: Allocated,
    proposal: Proposal,
    outcome: Outcome,
    now: datetime,
) -> str | None:
    """Why the agent, the session's history or a steer limit refuses this proposal."""
    refusal = _capability_refusal(connection, runtime, policy, facts, proposal.action)
    if refusal is None and outcome in (Outcome.ALLOWED, Outcome.NEEDS_APPROVAL):
        refusal = _sequence_refusal(connection, runtime, policy, row, proposal.action, now)
    if refusal is None and outcome is Outcome.STEER and policy.steer_retries is not None:
        steered = history.count_decisions(connection, runtime, row.id, proposal.action, "steer")
        if steered >= policy.steer_retries:
            refusal = f"steer.retry_limit:{proposal.action}"
    return refusal
