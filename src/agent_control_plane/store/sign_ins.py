"""Dashboard sign-in statements: start, read by token hash, sign out, forget expired."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime


def insert_sign_in(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.sign_ins), values)


def get(connection: Connection, runtime: Runtime, token_hash: str) -> Row[Any] | None:
    sign_ins = runtime.tables.sign_ins
    return connection.execute(
        select(sign_ins).where(sign_ins.c.token_hash == token_hash)
    ).one_or_none()


def sign_out(connection: Connection, runtime: Runtime, token_hash: str, now: datetime) -> None:
    """Mark the sign-in signed out (a second sign-out keeps the first time)."""
    c = runtime.tables.sign_ins.c
    connection.execute(
        update(runtime.tables.sign_ins)
        .where(c.token_hash == token_hash, c.signed_out_at.is_(None))
        .values(signed_out_at=now)
    )


def forget_ended(connection: Connection, runtime: Runtime, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` sign-ins that expired before ``before``."""
    sign_ins = runtime.tables.sign_ins
    c = sign_ins.c
    ended = select(c.token_hash).where(c.expires_at < before).limit(limit)
    hashes = list(connection.execute(ended).scalars())
    if not hashes:
        return 0
    return int(connection.execute(delete(sign_ins).where(c.token_hash.in_(hashes))).rowcount)
