"""Idempotency records: the first result of a keyed request, unique per scope and key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime


def record(
    connection: Connection,
    runtime: Runtime,
    scope: str,
    key: str,
    request_digest: str,
    result: dict[str, Any],
    now: datetime,
) -> None:
    """Insert the record; a concurrent or earlier twin makes this raise IntegrityError."""
    connection.execute(
        insert(runtime.tables.idempotency_keys),
        {
            "scope": scope,
            "key": key,
            "request_digest": request_digest,
            "result": result,
            "created_at": now,
        },
    )


@dataclass(frozen=True, slots=True)
class Stored:
    request_digest: str
    result: dict[str, Any]


def find(connection: Connection, runtime: Runtime, scope: str, key: str) -> Stored | None:
    keys = runtime.tables.idempotency_keys
    row = connection.execute(
        select(keys.c.request_digest, keys.c.result).where(keys.c.scope == scope, keys.c.key == key)
    ).one_or_none()
    return None if row is None else Stored(row.request_digest, row.result)


def prune(connection: Connection, runtime: Runtime, before: datetime) -> int:
    keys = runtime.tables.idempotency_keys
    return int(connection.execute(delete(keys).where(keys.c.created_at < before)).rowcount)
