"""What a database can do for ACP's statements, by name: call sites ask a capability, never
a dialect's name (as SQLAlchemy's own dialects do with ``update_returning`` and the like).

This is the one place that maps dialect names to what they can do; what the statements
look like where dialects differ lives in ``store/dialect.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    # The dialect's name, for what differs only in SQL functions (store/dialect.py) and for
    # messages: decide with the capabilities below.
    name: str
    # UPDATE ... RETURNING (PostgreSQL, SQLite): one statement, not an UPDATE and a read-back.
    update_returning: bool
    # INSERT ... RETURNING (PostgreSQL, SQLite, MariaDB 10.5+): the row as stored comes back
    # with the INSERT, not from a second statement.
    insert_returning: bool
    # INSERT ... RETURNING of a generated id (PostgreSQL; the others read the driver's
    # lastrowid).
    insert_returning_id: bool
    # Data-modifying CTEs: several writes as one atomic statement (PostgreSQL).
    writes_in_one_statement: bool
    # Statements may be sent straight to the driver (store/prepared.py; MariaDB's read-back
    # path stays on SQLAlchemy's pipeline).
    direct_execution: bool
    # A warm allowed decision as one statement in autocommit (PostgreSQL through psycopg,
    # whose autocommit switch sends nothing to the server).
    one_statement_decisions: bool
    # An UPDATE rewrites every index on a column it sets, even to the same value (SQLite):
    # a column is better left out of an UPDATE than set to what it is.
    rewrites_unchanged_indexes: bool


def capabilities_of(dialect: Any) -> Capabilities:
    """The capabilities of a SQLAlchemy dialect (of an engine or a connection)."""
    name = "mysql" if dialect.name == "mariadb" else dialect.name
    postgresql = name == "postgresql"
    return Capabilities(
        name=name,
        update_returning=bool(dialect.update_returning),
        insert_returning=bool(dialect.insert_returning),
        insert_returning_id=postgresql,
        writes_in_one_statement=postgresql,
        direct_execution=name in ("sqlite", "postgresql"),
        one_statement_decisions=postgresql and dialect.driver == "psycopg",
        rewrites_unchanged_indexes=name == "sqlite",
    )
