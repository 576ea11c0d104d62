"""Housekeeping that is safe to run from many processes at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Connection

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import idempotency


def prune_idempotency_keys(
    connection: Connection, runtime: Runtime, older_than: timedelta | None = None
) -> int:
    """Delete idempotency records older than ``older_than`` (default: the retention
    setting); return how many. A retry after that is treated as a new request."""
    age = runtime.idempotency_retention if older_than is None else older_than
    if not isinstance(age, timedelta) or age <= timedelta(0):
        raise InvalidInputError("older_than", "must be a positive timedelta")
    with connection.begin():
        return idempotency.prune(connection, runtime, runtime.clock() - age)
