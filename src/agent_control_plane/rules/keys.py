"""API keys and roles: the key format, secret hashing, what each role may do, which agents
an agent key acts as, and when a key stops working (no I/O).

A key reads ``acp_<key_id>_<secret>``: the key id is public (listings, audit records),
the secret is 256 random bits shown once and stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agent_control_plane.errors import AuthenticationError, InvalidInputError
from agent_control_plane.rules import validation

KEY_PREFIX = "acp"
_KEY_ID_BYTES = 8
_SECRET_BYTES = 32
_KEY_RE = re.compile(r"^acp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# Compared against when the key id is unknown, so a miss costs what a hit costs.
_UNKNOWN_HASH = hashlib.sha256(b"no such key").hexdigest()


class Role(StrEnum):
    AGENT = "agent"
    APPROVER = "approver"
    ADMIN = "admin"
    VIEWER = "viewer"


class Permission(StrEnum):
    """What an endpoint or command needs."""

    READ = "read"  # list and read everything within the key's tenant
    READ_OWN = "read_own"  # read a session, ticket or budget status by its id
    ACT = "act"  # open sessions, govern, record outcomes, emit, heartbeat, tokens
    APPROVE = "approve"  # approve or deny tickets
    OPERATE = "operate"  # pause/resume, kill switch, budgets, policies, keys


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ, Permission.READ_OWN}),
    Role.APPROVER: frozenset({Permission.READ, Permission.READ_OWN, Permission.APPROVE}),
    Role.AGENT: frozenset({Permission.READ_OWN, Permission.ACT}),
    Role.ADMIN: frozenset(Permission),
}


def role_of(value: str) -> Role:
    try:
        return Role(value if isinstance(value, str) else None)
    except ValueError:
        names = ", ".join(role.value for role in Role)
        shown = repr(value)[:80] if isinstance(value, str) else f"a {type(value).__name__}"
        raise InvalidInputError("role", f"must be one of {names} (got {shown})") from None


def allows(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``: admin ⊇ approver ⊇ viewer; agent acts and
    reads what it is handed by id."""
    return permission in _GRANTS[Role(role)]


def tenant_allows(key_tenant: str | None, tenant: str | None) -> bool:
    """A key without a tenant sees every tenant; a tenant key sees only its own."""
    return key_tenant is None or key_tenant == tenant


ANY_AGENT = "*"
MAX_AGENTS = 100


class Access(StrEnum):
    """What a key may do with a session (or what hangs off one: tickets, reservations)."""

    ALLOWED = "allowed"
    OTHER_TENANT = "other_tenant"  # not there, as far as the key can tell (404)
    OTHER_AGENT = "other_agent"  # there, but another agent's (403)


def agent_patterns(role: Role, agents: Any) -> tuple[str, ...] | None:
    """The agents a new key of ``role`` acts as, checked: an agent key names at least one
    (an id, or a pattern where ``*`` stands for any characters; ``["*"]`` for any agent),
    a key of another role names none (its role decides, whatever the agent)."""
    if role != Role.AGENT:
        if agents is not None:
            raise InvalidInputError("agents", f"only an agent key names agents, not a {role} key")
        return None
    if agents is None:
        raise InvalidInputError(
            "agents",
            "an agent key names the agents it may act as, e.g. agents=['bot-1'] "
            "(agents=['*'] for every agent, said explicitly)",
        )
    if isinstance(agents, str) or not isinstance(agents, Iterable):
        raise InvalidInputError("agents", "must be a list of agent ids or patterns")
    names = list(dict.fromkeys(validation.required_text(name, "agents") for name in agents))
    if not names:
        raise InvalidInputError("agents", "must name at least one agent (['*'] for any)")
    if len(names) > MAX_AGENTS:
        raise InvalidInputError("agents", f"names {len(names)} patterns; the limit is {MAX_AGENTS}")
    return tuple(names)


def agent_matches(pattern: str, agent_id: str) -> bool:
    """Whether ``agent_id`` matches ``pattern``: ``*`` stands for any run of characters,
    everything else for itself (``bot-1`` is not ``bot-1-again``; ``bot-1*`` is)."""
    head, *rest = pattern.split(ANY_AGENT)
    if not rest:
        return agent_id == pattern
    *middle, tail = rest
    if len(head) + len(tail) > len(agent_id):
        return False
    if not (agent_id.startswith(head) and agent_id.endswith(tail)):
        return False
    # Each middle part at its leftmost place: linear, whatever the pattern.
    position, end = len(head), len(agent_id) - len(tail)
    for part in middle:
        found = agent_id.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def agent_allows(role: Role | str, key_agents: tuple[str, ...] | None, agent_id: str) -> bool:
    """Whether a key may act as ``agent_id``: an agent key only as one of its agents (one
    that names none, as none); a key of another role is bound by its role alone."""
    if Role(role) != Role.AGENT:
        return True
    return any(agent_matches(pattern, agent_id) for pattern in key_agents or ())


def session_access(
    role: Role | str,
    key_tenant: str | None,
    key_agents: tuple[str, ...] | None,
    tenant: str | None,
    agent_id: str | None,
) -> Access:
    """What a key may do with a session (a ticket, a reservation) of ``tenant`` and
    ``agent_id``: another tenant's is hidden from it, another agent's is refused to an
    agent key (as is one that belongs to no agent)."""
    if not tenant_allows(key_tenant, tenant):
        return Access.OTHER_TENANT
    if Role(role) == Role.AGENT and (
        agent_id is None or not agent_allows(role, key_agents, agent_id)
    ):
        return Access.OTHER_AGENT
    return Access.ALLOWED


def sole_agent(key_agents: tuple[str, ...] | None) -> str | None:
    """The one agent a key acts as, if it names exactly one and no pattern."""
    if key_agents is not None and len(key_agents) == 1 and ANY_AGENT not in key_agents[0]:
        return key_agents[0]
    return None


def expiry(expires_at: Any, expires_in: Any, now: datetime) -> datetime | None:
    """When a new key stops working: ``expires_at`` (aware, in the future) or ``now +
    expires_in`` (a positive timedelta), at most one of them; None for never."""
    if expires_at is not None and expires_in is not None:
        raise InvalidInputError("expires_at", "give expires_at or expires_in, not both")
    if expires_in is not None:
        if not isinstance(expires_in, timedelta) or expires_in <= timedelta(0):
            raise InvalidInputError("expires_in", "must be a positive timedelta")
        try:
            return now + expires_in
        except OverflowError:
            raise InvalidInputError("expires_in", "is too long") from None
    at = validation.aware(expires_at, "expires_at")
    if at is not None and at <= now:
        raise InvalidInputError("expires_at", f"is not in the future ({at.isoformat()})")
    return at


def require_live(
    key_id: str, revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> None:
    """Raise AuthenticationError (``revoked``, ``expired``) unless the known key still works."""
    if revoked_at is not None:
        raise AuthenticationError("revoked", f"API key {key_id} was revoked")
    if expires_at is not None and expires_at <= now:
        raise AuthenticationError(
            "expired", f"API key {key_id} expired at {expires_at.isoformat()}"
        )


def new_key_id() -> str:
    return secrets.token_hex(_KEY_ID_BYTES)


def new_secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(raw: object) -> tuple[str, str]:
    """Split a presented key into (key_id, secret) or raise AuthenticationError."""
    if raw is None or raw == "":
        raise AuthenticationError("missing", "no API key was presented")
    match = _KEY_RE.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise AuthenticationError(
            "malformed", "the API key is malformed: expected acp_<key_id>_<secret>"
        )
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of the secret's hash with the stored one."""
    expected = _UNKNOWN_HASH if stored_hash is None else stored_hash
    return hmac.compare_digest(hash_secret(secret), expected) and stored_hash is not None
