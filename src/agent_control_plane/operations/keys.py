"""API keys: create (the secret is returned once), list, revoke, authenticate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from agent_control_plane.errors import ApiKeyNotFoundError, AuthenticationError
from agent_control_plane.memory import VerifiedKey
from agent_control_plane.models import ApiKey, IssuedApiKey, Principal
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import keys, validation
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import keys as key_store

# last_used_at is a hint for operators, not an audit record: one write a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# How long a verified key is trusted without reading it again (seconds): a key revoked by
# another process (or directly in the database) stops working within this time.
KEY_RECHECK_SECONDS = 1.0


def create_api_key(
    connection: Connection,
    runtime: Runtime,
    role: str,
    *,
    tenant: str | None = None,
    name: str | None = None,
    agents: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> IssuedApiKey:
    """Create an API key with ``role`` (agent, approver, admin, viewer), optionally confined
    to ``tenant``. An agent key names the ``agents`` it may act as: ids, or patterns where
    ``*`` stands for any characters (``["*"]``: every agent, said explicitly); other roles
    name none. ``expires_at`` (aware) or ``expires_in`` (a timedelta) sets when it stops
    working. The returned ``key`` is the only time the full secret is available."""
    checked_role = keys.role_of(role)
    tenant = validation.text(tenant, "tenant", optional=True)
    name = validation.text(name, "name", optional=True)
    patterns = keys.agent_patterns(checked_role, agents)
    now = runtime.clock()
    expiry = keys.expiry(expires_at, expires_in, now)
    key_id, secret = keys.new_key_id(), keys.new_secret()
    api_key = ApiKey(
        id=uuid.uuid4(),
        key_id=key_id,
        name=name,
        role=checked_role.value,
        tenant=tenant,
        created_at=now,
        last_used_at=None,
        revoked_at=None,
        agents=patterns,
        expires_at=expiry,
    )
    values = {
        "id": api_key.id,
        "key_id": key_id,
        "secret_hash": keys.hash_secret(secret),
        "name": name,
        "role": api_key.role,
        "tenant": tenant,
        "created_at": now,
        "agents": None if patterns is None else list(patterns),
        "expires_at": expiry,
    }
    with connection.begin():
        key_store.insert_key(connection, runtime, values)
    return IssuedApiKey(api_key=api_key, key=keys.format_key(key_id, secret))


@repeatable
def list_api_keys(
    connection: Connection,
    runtime: Runtime,
    *,
    tenant: str | None = None,
    include_revoked: bool = True,
) -> list[ApiKey]:
    """API keys (never their secrets), oldest first; optionally one tenant's or only live ones."""
    tenant = validation.text(tenant, "tenant", optional=True)
    with connection.begin():
        return key_store.listing(
            connection, runtime, tenant=tenant, include_revoked=include_revoked
        )


def _checked_key_id(key_id: str) -> str:
    return validation.required_text(key_id, "key_id")


@repeatable
def get_api_key(connection: Connection, runtime: Runtime, key_id: str) -> ApiKey:
    """One API key by its public id (never its secret), revoked or not."""
    key_id = _checked_key_id(key_id)
    with connection.begin():
        api_key = key_store.get(connection, runtime, key_id)
    if api_key is None:
        raise ApiKeyNotFoundError(f"no API key {key_id!r}")
    return api_key


def revoke_api_key(connection: Connection, runtime: Runtime, key_id: str) -> ApiKey:
    """Revoke the key now (revoking a revoked key changes nothing); return it."""
    key_id = _checked_key_id(key_id)
    with connection.begin():
        key_store.revoke(connection, runtime, key_id, runtime.clock())
        api_key = key_store.get(connection, runtime, key_id)
    runtime.memory.forget_key(key_id)
    if api_key is None:
        raise ApiKeyNotFoundError(f"no API key {key_id!r}")
    return api_key


def remembered_principal(runtime: Runtime, raw: str | None) -> Principal | None:
    """The principal of a key verified less than KEY_RECHECK_SECONDS ago, checked without
    I/O against what was read then (the presented secret hashed and compared in constant
    time, the expiry against now); None when only a read can tell. AuthenticationError for
    a missing, malformed or expired key."""
    key_id, secret = keys.parse_key(raw)
    known = runtime.memory.verified_key(key_id)
    if (
        known is None
        or time.monotonic() - known.read_at >= KEY_RECHECK_SECONDS
        or not keys.secret_matches(secret, known.secret_hash)
    ):
        return None
    keys.require_live(key_id, None, known.expires_at, runtime.clock())
    return known.principal


@repeatable
def authenticate_api_key(connection: Connection, runtime: Runtime, raw: str | None) -> Principal:
    """The principal a presented key stands for, or AuthenticationError (missing, malformed,
    unknown, revoked or expired key).

    A key verified less than KEY_RECHECK_SECONDS ago is verified against what was read then
    (remembered_principal): a key revoked elsewhere stops working within that time, one
    revoked through this control plane at once."""
    remembered = remembered_principal(runtime, raw)
    if remembered is not None:
        return remembered
    key_id, secret = keys.parse_key(raw)
    read_at = time.monotonic()
    with connection.begin():
        row = key_store.credentials(connection, runtime, key_id)
        if not keys.secret_matches(secret, None if row is None else row.secret_hash):
            raise AuthenticationError("unknown", f"API key {key_id} is not known")
        assert row is not None
        now = runtime.clock()
        keys.require_live(key_id, row.revoked_at, row.expires_at, now)
        key_store.mark_used(connection, runtime, key_id, now, LAST_USED_RESOLUTION)
    principal = Principal.of(key_store.to_api_key(row))
    verified = VerifiedKey(row.secret_hash, principal, row.expires_at, read_at)
    runtime.memory.remember_key(key_id, verified)
    return principal


def api_key_principal(connection: Connection, runtime: Runtime, key_id: str) -> Principal:
    """The principal of a live key by its public id, for a caller that proved the secret
    before (a dashboard session): AuthenticationError once it is revoked or expired,
    ApiKeyNotFoundError if there is no such key."""
    api_key = get_api_key(connection, runtime, key_id)
    keys.require_live(api_key.key_id, api_key.revoked_at, api_key.expires_at, runtime.clock())
    return Principal.of(api_key)
