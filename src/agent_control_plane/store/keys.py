"""API key statements: insert, read by key id, list, revoke and mark used."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.engine import Connection

from agent_control_plane.models import ApiKey
from agent_control_plane.runtime import Runtime
from agent_control_plane.store.rows import to_model


def insert_key(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.api_keys), values)


def credentials(connection: Connection, runtime: Runtime, key_id: str) -> Row[Any] | None:
    """The key's row with its secret hash (for authentication only)."""
    keys = runtime.tables.api_keys
    return connection.execute(select(keys).where(keys.c.key_id == key_id)).one_or_none()


def to_api_key(row: Row[Any]) -> ApiKey:
    key = to_model(ApiKey, row)
    agents = None if row.agents is None else tuple(row.agents)
    return replace(key, agents=agents)


def get(connection: Connection, runtime: Runtime, key_id: str) -> ApiKey | None:
    row = credentials(connection, runtime, key_id)
    return None if row is None else to_api_key(row)


def listing(
    connection: Connection, runtime: Runtime, *, tenant: str | None, include_revoked: bool
) -> list[ApiKey]:
    keys = runtime.tables.api_keys
    query = select(keys).order_by(keys.c.created_at, keys.c.key_id)
    if tenant is not None:
        query = query.where(keys.c.tenant == tenant)
    if not include_revoked:
        query = query.where(keys.c.revoked_at.is_(None))
    return [to_api_key(row) for row in connection.execute(query)]


def revoke(connection: Connection, runtime: Runtime, key_id: str, now: datetime) -> bool:
    """Revoke the key unless it is revoked already; True if this call revoked it."""
    keys = runtime.tables.api_keys
    result = connection.execute(
        update(keys)
        .where(keys.c.key_id == key_id, keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def mark_used(
    connection: Connection, runtime: Runtime, key_id: str, now: datetime, every: timedelta
) -> None:
    """Record the key's use, at most once per ``every``: no write on most requests."""
    keys = runtime.tables.api_keys
    connection.execute(
        update(keys)
        .where(
            keys.c.key_id == key_id,
            or_(keys.c.last_used_at.is_(None), keys.c.last_used_at < now - every),
        )
        .values(last_used_at=now)
    )
