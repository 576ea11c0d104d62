"""A database-wide lock around migrations, so many workers starting at once are safe."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from agent_control_plane.errors import MigrationError
from agent_control_plane.schema.layout import Layout

LOCK_TIMEOUT_SECONDS = 300


def lock_name(layout: Layout, database: str | None) -> str:
    return f"acp:{database or ''}:{layout.schema or ''}:{layout.table_prefix}"[:64]


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def locked_transaction(connection: Connection, layout: Layout) -> Iterator[None]:
    """Run the body in one transaction that holds ACP's migration lock.

    PostgreSQL: a transaction-scoped advisory lock (DDL is transactional there).
    MySQL/MariaDB: GET_LOCK, held by the session across the DDL's implicit commits.
    SQLite: the write lock that BEGIN IMMEDIATE takes (see engine.governed_engine).
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        name = lock_name(layout, connection.engine.url.database)
        with connection.begin():
            connection.execute(select(func.pg_advisory_xact_lock(advisory_key(name))))
            yield
        return
    if dialect in ("mysql", "mariadb"):
        database = connection.execute(select(func.database())).scalar()
        name = lock_name(layout, database)
        acquired = connection.execute(select(func.get_lock(name, LOCK_TIMEOUT_SECONDS))).scalar()
        connection.commit()
        if acquired != 1:
            raise MigrationError(
                f"another process held ACP's migration lock {name!r} for "
                f"{LOCK_TIMEOUT_SECONDS}s; retry when its upgrade has finished"
            )
        try:
            with connection.begin():
                yield
        finally:
            connection.execute(select(func.release_lock(name)))
            connection.commit()
        return
    # SQLite alters a table by copying it into a new one and dropping the old, which a row
    # referencing it blocks while foreign keys are enforced (a downgrade of a database that
    # holds data failed that way). As SQLite's own procedure says: enforcement off for the
    # migration (it cannot change inside a transaction), every key checked before the
    # commit, and enforcement back on after.
    _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            yield
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MigrationError(
                    f"the migration would leave {len(broken)} rows whose foreign keys point "
                    f"nowhere (first: {tuple(broken[0])}); nothing was changed"
                )
    finally:
        _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Run ``pragma`` on the driver's connection, outside any transaction."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()
