"""Idempotency records: the first result of a keyed request, unique per scope and key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import takewhile
from typing import Any

from sqlalchemy import Insert, Select, bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.schema.types import UTCDateTime
from agent_control_plane.store.prepared import fetch


@dataclass(slots=True)
class Claim:
    """A keyed request about to be recorded. Whoever writes the record sets ``recorded``."""

    scope: str
    key: str
    request_digest: str
    recorded: bool = False
    # False for a result that is not final (waiting for a person): a retry with the same
    # key decides again instead of replaying it.
    final: bool = True

    def parameters(self, result: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "i_scope": self.scope,
            "i_key": self.key,
            "i_digest": self.request_digest,
            "i_result": result,
            "i_now": now,
        }


class AlreadyRecorded(Exception):
    """Raised inside a keyed operation that found its key already recorded: roll back
    and return the recorded result."""


@dataclass(frozen=True, slots=True)
class Stored:
    request_digest: str
    result: dict[str, Any]


@lru_cache(maxsize=32)
def insert_statement(tables: AcpTables) -> Insert:
    keys = tables.idempotency_keys
    return (
        insert(keys)
        .values(
            scope=bindparam("i_scope"),
            key=bindparam("i_key"),
            request_digest=bindparam("i_digest"),
            result=bindparam("i_result", type_=keys.c.result.type),
            created_at=bindparam("i_now", type_=UTCDateTime()),
        )
        .inline()
    )


@lru_cache(maxsize=32)
def _find_statement(tables: AcpTables) -> Select[Any]:
    keys = tables.idempotency_keys
    return select(keys.c.request_digest, keys.c.result).where(
        keys.c.scope == bindparam("i_scope"), keys.c.key == bindparam("i_key")
    )


def record(
    connection: Connection, runtime: Runtime, claim: Claim, result: dict[str, Any], now: datetime
) -> None:
    """Insert the record; a concurrent or earlier twin makes this raise IntegrityError."""
    connection.execute(insert_statement(runtime.tables), claim.parameters(result, now))
    claim.recorded = True


def find(connection: Connection, runtime: Runtime, scope: str, key: str) -> Stored | None:
    rows = fetch(
        connection, runtime, _find_statement(runtime.tables), {"i_scope": scope, "i_key": key}
    )
    return Stored(rows[0]["request_digest"], rows[0]["result"]) if rows else None


def prune(connection: Connection, runtime: Runtime, before: datetime, limit: int) -> int:
    """Delete the oldest records, up to ``limit``, that were created before ``before`` and
    that no other pruner holds.

    Ids grow with time, so the oldest records are the lowest ids: the batch reads the first
    ``limit`` ids and stops at the first record that is still young. No index on
    created_at is needed (every keyed request would write one), and a batch never reads
    more than ``limit`` rows. A record that committed a moment out of id order waits for
    the next batch after its neighbours."""
    keys = runtime.tables.idempotency_keys
    oldest = connection.execute(
        select(keys.c.id, keys.c.created_at)
        .order_by(keys.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    # Ids first, then the delete: MySQL/MariaDB refuse LIMIT inside an IN subquery.
    ids = [row.id for row in takewhile(lambda row: row.created_at < before, oldest)]
    if not ids:
        return 0
    return int(connection.execute(delete(keys).where(keys.c.id.in_(ids))).rowcount)
