"""API keys and roles: the key format, secret hashing and what each role may do (no I/O).

A key reads ``acp_<key_id>_<secret>``: the key id is public (listings, audit records),
the secret is 256 random bits shown once and stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum

from agent_control_plane.errors import AuthenticationError, InvalidInputError

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
        return Role(value)
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise InvalidInputError("role", f"must be one of {names} (got {value!r})") from None


def allows(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``: admin ⊇ approver ⊇ viewer; agent acts and
    reads what it is handed by id."""
    return permission in _GRANTS[Role(role)]


def tenant_allows(key_tenant: str | None, tenant: str | None) -> bool:
    """A key without a tenant sees every tenant; a tenant key sees only its own."""
    return key_tenant is None or key_tenant == tenant


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
