"""The one place where the three databases differ for ACP's statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Update, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.runtime import Runtime


def update_one(
    connection: Connection,
    runtime: Runtime,
    statement: Update,
    key: ColumnElement[Any],
    key_value: Any,
    columns: Sequence[ColumnElement[Any]],
) -> Row[Any] | None:
    """Run a single-row UPDATE and return ``columns`` as they are after it, or None.

    PostgreSQL and SQLite use RETURNING (one round trip); MariaDB has no
    UPDATE ... RETURNING, so it reads the row back — still locked by the UPDATE.
    """
    if runtime.update_returning:
        return connection.execute(statement.returning(*columns)).one_or_none()
    if connection.execute(statement).rowcount == 0:
        return None
    return connection.execute(select(*columns).where(key == key_value)).one()


def update_many(
    connection: Connection,
    runtime: Runtime,
    statement: Update,
    where: ColumnElement[bool],
    key: ColumnElement[Any],
    columns: Sequence[ColumnElement[Any]],
) -> list[Row[Any]]:
    """Run an UPDATE over every row matching ``where``; return ``columns`` after it."""
    if runtime.update_returning:
        return list(connection.execute(statement.where(where).returning(*columns)))
    keys = list(connection.execute(select(key).where(where).with_for_update()).scalars())
    rows: list[Row[Any]] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        connection.execute(statement.where(key.in_(chunk)))
        rows.extend(connection.execute(select(*columns).where(key.in_(chunk))))
    return rows


def violates(error: IntegrityError, constraint: str) -> bool:
    """True when ``error`` is the violation of the named unique constraint."""
    return constraint in str(error.orig)
