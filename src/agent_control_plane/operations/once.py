"""Exactly once: a keyed request's first result is recorded in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_control_plane.errors import GovernanceUnavailableError, IdempotencyConflictError
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import idempotency

T = TypeVar("T")


def scope(operation: str, tenant: str | None) -> str:
    return f"{operation}:{tenant or '*'}"


def run_once(
    connection: Connection,
    runtime: Runtime,
    work: Callable[[], tuple[T, dict[str, Any]]],
    decode: Callable[[dict[str, Any]], T],
    *,
    scope: str,
    key: str | None,
    request_digest: str,
) -> T:
    """Run ``work`` (which returns the result and its JSON form) in one transaction.

    With a key, the result is recorded under (scope, key) in that same transaction;
    a retry — concurrent or later — rolls its own work back and returns the first
    result. The same key with a different request raises IdempotencyConflictError.
    """
    try:
        try:
            with connection.begin():
                stored = None if key is None else idempotency.find(connection, runtime, scope, key)
                if stored is None:
                    result, data = work()
                    if key is not None:
                        idempotency.record(
                            connection, runtime, scope, key, request_digest, data, runtime.clock()
                        )
                    return result
        except IntegrityError:
            if key is None:
                raise
            # A concurrent twin committed first: our work was rolled back; use its result.
            with connection.begin():
                stored = idempotency.find(connection, runtime, scope, key)
            if stored is None:
                raise
    except DBAPIError as error:
        if isinstance(error, IntegrityError):
            raise
        raise GovernanceUnavailableError(
            f"the database failed, so nothing was decided or written (fail closed): {error.orig}"
        ) from error
    if stored.request_digest != request_digest:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different request in {scope!r}; "
            "use a new key for a new request"
        )
    return decode(stored.result)
