"""Exactly once: a keyed request's first result is recorded in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_control_plane.boundary import InDoubt
from agent_control_plane.errors import IdempotencyConflictError
from agent_control_plane.rules.canonical import digest
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import idempotency
from agent_control_plane.store.idempotency import AlreadyRecorded, Claim, Stored

T = TypeVar("T")


def scope(operation: str, tenant: str | None) -> str:
    return f"{operation}:{tenant or '*'}"


def run_once(
    connection: Connection,
    runtime: Runtime,
    work: Callable[[Claim | None], tuple[T, dict[str, Any]]],
    decode: Callable[[dict[str, Any]], T],
    *,
    scope: str,
    key: str | None,
    request: Any,
    look_first: bool = True,
    in_doubt: Callable[[T], InDoubt] | None = None,
) -> T:
    """Run ``work`` in one transaction; with a key, record its result there too.

    ``work`` gets the Claim (or None without a key) and may write the record itself
    (to fold it into its own statements); otherwise it is written after ``work``. A
    retry, concurrent or later, returns the first result and changes nothing; the
    same key with a different request raises IdempotencyConflictError. ``request`` is the
    JSON document a retry must match; it is only digested when there is a key.
    ``look_first=False`` skips the initial lookup: a retry then runs ``work`` and is
    rolled back by the unique constraint — cheaper when retries are rare and ``work``
    cannot fail on a replay.

    If the COMMIT fails, the call may have committed: it raises InDoubt, built by
    ``in_doubt(result)`` if given, else, for a keyed call, saying that running the call
    again finds its first result (the facade settles it).
    """
    claim = None if key is None else Claim(scope, key, digest(request))
    stored: Stored | None = None
    committing: list[T] = []
    try:
        with connection.begin():
            if claim is not None and look_first:
                stored = idempotency.find(connection, runtime, scope, claim.key)
            if stored is None:
                result, data = work(claim)
                if claim is not None and claim.final and not claim.recorded:
                    idempotency.record(connection, runtime, claim, data, runtime.clock())
                committing.append(result)
                return result
    except (IntegrityError, AlreadyRecorded):
        if claim is None:
            raise
        # A twin committed first: our work was rolled back; use its result.
        with connection.begin():
            stored = idempotency.find(connection, runtime, scope, claim.key)
        if stored is None:
            raise
    except DBAPIError as error:
        if not committing or (in_doubt is None and key is None):
            raise
        if in_doubt is not None:
            raise in_doubt(committing[0]) from error
        raise InDoubt(key=key, rerun={}) from error
    assert claim is not None  # only a keyed request finds a stored result
    if stored.request_digest != claim.request_digest:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different request in {scope!r}; "
            "use a new key for a new request"
        )
    return decode(stored.result)
