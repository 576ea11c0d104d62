"""Policy snapshots: immutable rows, deduplicated by digest, versioned per name."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.engine import Connection

from agent_control_plane.errors import PolicyNotFoundError
from agent_control_plane.models import PolicySnapshot
from agent_control_plane.rules.policy import PolicyDocument, parse_policy
from agent_control_plane.runtime import Runtime


def _snapshot(row: Row[Any]) -> PolicySnapshot:
    return PolicySnapshot(
        id=row.id,
        name=row.name,
        version=row.version,
        digest=row.digest,
        document=parse_policy(row.document, source=f"stored policy {row.id}"),
        created_at=row.created_at,
    )


def get(connection: Connection, runtime: Runtime, policy_id: uuid.UUID) -> PolicySnapshot:
    policies = runtime.tables.policies
    row = connection.execute(select(policies).where(policies.c.id == policy_id)).one_or_none()
    if row is None:
        raise PolicyNotFoundError(f"no stored policy {policy_id}")
    return _snapshot(row)


def by_digest(connection: Connection, runtime: Runtime, digest: str) -> PolicySnapshot | None:
    policies = runtime.tables.policies
    row = connection.execute(select(policies).where(policies.c.digest == digest)).one_or_none()
    return None if row is None else _snapshot(row)


def insert_next_version(
    connection: Connection, runtime: Runtime, document: PolicyDocument, now: datetime
) -> PolicySnapshot:
    """Insert ``document`` as the next version of its name (the unique constraints arbitrate
    between concurrent writers; the caller retries on a violation)."""
    policies = runtime.tables.policies
    current = connection.execute(
        select(func.max(policies.c.version)).where(policies.c.name == document.name)
    ).scalar()
    policy_id, version = uuid.uuid4(), int(current or 0) + 1
    values = {
        "id": policy_id,
        "name": document.name,
        "version": version,
        "digest": document.digest,
        "document": document.to_json_data(),
        "created_at": now,
    }
    connection.execute(insert(policies), values)
    return PolicySnapshot(
        id=policy_id,
        name=document.name,
        version=version,
        digest=document.digest,
        document=document,
        created_at=now,
    )


def listing(connection: Connection, runtime: Runtime, name: str | None) -> list[PolicySnapshot]:
    policies = runtime.tables.policies
    query = select(policies).order_by(policies.c.name, policies.c.version)
    if name is not None:
        query = query.where(policies.c.name == name)
    return [_snapshot(row) for row in connection.execute(query)]
