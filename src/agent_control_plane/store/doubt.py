"""Did a row commit? Asked after a connection failed while committing the row's insert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.runtime import Runtime


def committed_row(
    connection: Connection, table: Table, values: dict[str, Any], key: Sequence[str]
) -> dict[str, Any] | None:
    """The committed row of ``table`` whose ``key`` columns equal those of ``values``, or
    None if there is none.

    A plain read could run before the failed transaction ends (the server may still be
    committing it), and see nothing. Inserting ``values`` again cannot: a unique index
    makes the insert wait for any transaction still writing the same key (PostgreSQL,
    InnoDB; SQLite's write lock serialises it anyway), and then fail if it committed.
    The insert itself is always rolled back.
    """
    transaction = connection.begin()
    try:
        try:
            connection.execute(insert(table), values)
        except IntegrityError:
            duplicate = True
        else:
            duplicate = False
    finally:
        transaction.rollback()
    if not duplicate:
        return None
    with connection.begin():
        row = connection.execute(
            select(table).where(*(table.c[name] == values[name] for name in key))
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def committed_event(
    connection: Connection, runtime: Runtime, written: dict[str, Any]
) -> dict[str, Any] | None:
    """The committed event at ``written``'s session and seq, or None (see committed_row)."""
    return committed_row(connection, runtime.tables.events, written, ("session_id", "seq"))


def committed_reservation(
    connection: Connection, runtime: Runtime, inserted: dict[str, Any]
) -> dict[str, Any] | None:
    """The committed token reservation with ``inserted``'s id, or None (see committed_row)."""
    return committed_row(connection, runtime.tables.token_reservations, inserted, ("id",))
