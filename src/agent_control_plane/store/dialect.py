"""The one place where the three databases differ for ACP's statements."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Insert, Row, Table, Update, func, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.runtime import Runtime
from agent_control_plane.store.prepared import execute, fetch


def utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a stored timestamp, as text YYYY-MM-DD on every dialect."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    if dialect == "mysql":
        return func.date_format(column, "%Y-%m-%d")
    return func.substr(column, 1, 10)  # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC


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
    if runtime.capabilities.update_returning:
        return connection.execute(statement.returning(*columns)).one_or_none()
    if connection.execute(statement).rowcount == 0:
        return None
    return connection.execute(select(*columns).where(key == key_value)).one()


def insert_one(
    connection: Connection, runtime: Runtime, table: Table, values: dict[str, Any], key: str
) -> dict[str, Any]:
    """Insert the row of ``values``; return it as stored, every column of ``table``.

    One round trip where INSERT ... RETURNING exists; elsewhere (MySQL) the row is read
    back by its ``key`` column, whose value ``values`` holds.
    """
    if runtime.capabilities.insert_returning:
        return fetch(connection, runtime, _insert_one(table, True), values)[0]
    execute(connection, runtime, _insert_one(table, False), values)
    column = table.c[key]
    return dict(connection.execute(select(table).where(column == values[key])).one()._mapping)


@lru_cache(maxsize=64)
def _insert_one(table: Table, returning: bool) -> Insert:
    """Built once per table: a session opening runs it every time."""
    statement = insert(table)
    return statement.returning(*table.c) if returning else statement


def update_many(
    connection: Connection,
    runtime: Runtime,
    statement: Update,
    where: ColumnElement[bool],
    key: ColumnElement[Any],
    columns: Sequence[ColumnElement[Any]],
) -> list[Row[Any]]:
    """Run an UPDATE over every row matching ``where``; return ``columns`` after it.

    MariaDB has no UPDATE ... RETURNING, so the rows are locked, updated and read back by
    key. Its locking read under READ COMMITTED can step over a row whose indexed column
    another transaction changes mid-scan (a session's first decision moves it from
    created to active): it waits on the old index entry, then skips it, and the new entry
    lies behind the cursor. So it sweeps again until a pass finds no row it has not
    updated; each pass sees what committed meanwhile.
    """
    if runtime.capabilities.update_returning:
        return list(connection.execute(statement.where(where).returning(*columns)))
    done: set[Any] = set()
    rows: list[Row[Any]] = []
    while True:
        found = connection.execute(select(key).where(where).with_for_update()).scalars()
        keys = [k for k in found if k not in done]
        if not keys:
            return rows
        done.update(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            connection.execute(statement.where(key.in_(chunk)))
            rows.extend(connection.execute(select(*columns).where(key.in_(chunk))))


def upsert(
    runtime: Runtime,
    table: Table,
    values: dict[str, Any],
    key: Sequence[str],
    changes: dict[str, Any] | None = None,
) -> Any:
    """INSERT ``values``, or on a duplicate ``key`` apply ``changes`` to the row there
    (None: leave it as it is). Any number of concurrent writers succeed.

    MySQL/MariaDB get ON DUPLICATE KEY UPDATE even with no changes (a no-op update of the
    key), never INSERT IGNORE: IGNORE takes a shared lock on a duplicate that a later
    UPDATE in the transaction must upgrade, and concurrent first writers deadlock. The
    no-op locks the row exclusively at once, so they queue instead.
    """
    if runtime.dialect == "mysql":
        on_duplicate = changes or {key[0]: table.c[key[0]]}
        return mysql.insert(table).values(values).on_duplicate_key_update(**on_duplicate)
    dialect_insert = postgresql.insert if runtime.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(values)
    if changes is None:
        return statement.on_conflict_do_nothing(index_elements=list(key))
    return statement.on_conflict_do_update(index_elements=list(key), set_=changes)


def violates(error: IntegrityError, constraint: str) -> bool:
    """True when ``error`` is the violation of the named unique constraint."""
    return constraint in str(error.orig)
