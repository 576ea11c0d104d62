"""Dashboard sign-ins, kept by the server: an operator signs in with an API key and gets a
random token for their cookie; every request shows the token; signing out ends it for every
copy of the cookie, and it ends by itself at its expiry, or when its key is revoked or
expires."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy.engine import Connection

from agent_control_plane.errors import AuthenticationError, InvalidInputError
from agent_control_plane.models import Principal, SignIn
from agent_control_plane.operations import keys as key_operations
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import keys
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import keys as key_store
from agent_control_plane.store import sign_ins as sign_in_store

DEFAULT_LIFETIME = timedelta(hours=8)
# Expired sign-ins a new sign-in deletes, so the table never grows without bound.
_FORGET_PER_SIGN_IN = 100


def _token_hash(token: object) -> str | None:
    """The hash a token is stored under; None for what no sign-in ever handed out."""
    if not isinstance(token, str) or not 0 < len(token) <= 128:
        return None
    try:
        return hashlib.sha256(token.encode()).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate: not a token we made
        return None


def sign_in(
    connection: Connection,
    runtime: Runtime,
    api_key: str | None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> SignIn:
    """Sign in with an API key (as ``authenticate_api_key`` checks it): a new sign-in whose
    ``token`` goes in the operator's cookie, valid for ``lifetime`` unless signed out first.
    AuthenticationError for a key that does not work."""
    if not isinstance(lifetime, timedelta) or not timedelta(0) < lifetime <= timedelta(days=30):
        raise InvalidInputError(
            "lifetime", "must be a timedelta of more than 0 and at most 30 days"
        )
    principal = key_operations.authenticate_api_key(connection, runtime, api_key)
    token = secrets.token_urlsafe(32)
    now = runtime.clock()
    expires_at = now + lifetime
    with connection.begin():
        sign_in_store.forget_ended(connection, runtime, now, _FORGET_PER_SIGN_IN)
        sign_in_store.insert_sign_in(
            connection,
            runtime,
            {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "key_id": principal.key_id,
                "created_at": now,
                "expires_at": expires_at,
            },
        )
    return SignIn(token=token, principal=principal, expires_at=expires_at)


@repeatable
def signed_in(connection: Connection, runtime: Runtime, token: str) -> Principal:
    """The principal of a live sign-in: AuthenticationError once it is signed out
    (``signed_out``), expired (``expired``), unknown (``unknown``), or its key no longer
    works (``revoked``, ``expired``)."""
    token_hash = _token_hash(token)
    if token_hash is None:
        raise AuthenticationError("unknown", "not signed in")
    now = runtime.clock()
    with connection.begin():
        row = sign_in_store.get(connection, runtime, token_hash)
        if row is None:
            raise AuthenticationError("unknown", "not signed in")
        if row.signed_out_at is not None:
            raise AuthenticationError("signed_out", "this sign-in was signed out")
        if row.expires_at <= now:
            raise AuthenticationError("expired", "this sign-in expired: sign in again")
        credentials = key_store.credentials(connection, runtime, row.key_id)
    if credentials is None:
        raise AuthenticationError("unknown", f"API key {row.key_id} is not known")
    keys.require_live(row.key_id, credentials.revoked_at, credentials.expires_at, now)
    return Principal.of(key_store.to_api_key(credentials))


@repeatable
def sign_out(connection: Connection, runtime: Runtime, token: str) -> None:
    """End the sign-in now, for every copy of its cookie (an unknown token changes nothing)."""
    token_hash = _token_hash(token)
    if token_hash is None:
        return
    with connection.begin():
        sign_in_store.sign_out(connection, runtime, token_hash, runtime.clock())
