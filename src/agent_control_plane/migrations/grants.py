"""Least privilege: let a runtime role read and write ACP's rows, never change its schema
nor its history.

The owner (or a migration role) runs ``acp db upgrade --grant-to ROLE``; the application
connects as ROLE and opens ACP with ``migrate="verify"``. The application's role may add
events and never change or delete one; pruning runs as a maintenance role
(``--grant-maintenance-to``), which may also delete old events and write prune anchors.
Grants name ACP's tables one by one (never "all tables in the schema"), so a layout
sharing a schema with the host grants nothing of the host's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from agent_control_plane.errors import ConfigurationError, MigrationError
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.tables import build_tables

ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# History is added to, never changed: what each role may do to the audit tables (by their
# logical names); every other table gets ROW_PRIVILEGES.
APPLICATION = "application"
MAINTENANCE = "maintenance"
HISTORY_PRIVILEGES = {
    APPLICATION: {"events": "SELECT, INSERT", "audit_anchors": "SELECT"},
    MAINTENANCE: {"events": "SELECT, INSERT, DELETE", "audit_anchors": "SELECT, INSERT"},
}
_PG_ROLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
_MYSQL_ROLE_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.$-]{1,80})(?:@(?P<host>[A-Za-z0-9_.%-]{1,255}))?$"
)

# Permission denied: PostgreSQL's SQLSTATE; MySQL/MariaDB error numbers for access
# denied to a database, a table, a column, or a statement needing a privilege.
_PG_DENIED = "42501"
_MYSQL_DENIED = frozenset({1044, 1142, 1143, 1227})


@dataclass(frozen=True, slots=True)
class Grantee:
    """A role (PostgreSQL) or account/role (MySQL/MariaDB, ``name`` or ``name@host``)."""

    dialect: str
    name: str
    host: str | None = None

    @classmethod
    def parse(cls, dialect: str, role: str) -> Grantee:
        """Check the role for this database before anything connects or changes."""
        if dialect == "sqlite":
            raise ConfigurationError(
                "SQLite has no roles or privileges: --grant-to applies to PostgreSQL and "
                "MySQL/MariaDB. On SQLite, protect the database file with file permissions."
            )
        if dialect == "postgresql":
            if not _PG_ROLE_RE.match(role):
                raise ConfigurationError(
                    f"invalid PostgreSQL role name {role!r}: use letters, digits, _, $ and -, "
                    "starting with a letter or underscore, at most 63 characters"
                )
            return cls(dialect, role)
        match = _MYSQL_ROLE_RE.match(role)
        if not match:
            raise ConfigurationError(
                f"invalid MySQL/MariaDB account {role!r}: use NAME or NAME@HOST (letters, "
                "digits, _ . $ -; the host may contain % wildcards)"
            )
        return cls(dialect, match["name"], match["host"])

    def sql(self, connection: Connection) -> str:
        if self.dialect == "postgresql":
            return connection.dialect.identifier_preparer.quote_identifier(self.name)
        # The patterns above admit no quote or backslash, so plain quoting is exact.
        account = f"'{self.name}'"
        return account if self.host is None else f"{account}@'{self.host}'"

    def __str__(self) -> str:
        return self.name if self.host is None else f"{self.name}@{self.host}"


def _present(connection: Connection, layout: Layout) -> tuple[list[Table], Table | None]:
    """ACP's tables that exist at the database's revision, and its version table."""
    present = set(inspect(connection).get_table_names(schema=layout.schema))
    tables = [table for table in build_tables(layout).all() if table.name in present]
    version = None
    if layout.version_table in present:
        version = Table(layout.version_table, MetaData(), schema=layout.schema)
    return tables, version


def _privileges(table: Table, role: str) -> str:
    return HISTORY_PRIVILEGES[role].get(table.info["acp"], ROW_PRIVILEGES)


def grant_statements(
    connection: Connection, layout: Layout, grantee: Grantee, role: str = APPLICATION
) -> list[str]:
    """The GRANTs that let ``grantee`` use ACP's rows as ``role`` (application or
    maintenance): row privileges on every ACP table except the history tables, what the
    role may do to those, SELECT only on the version table, and (PostgreSQL) the schema
    and id sequences. Privileges it held before on history tables are revoked first."""
    tables, version = _present(connection, layout)
    if not tables or version is None:
        raise MigrationError(
            f"no ACP tables found ({layout.describe()}): run the upgrade before granting"
        )
    preparer = connection.dialect.identifier_preparer
    to = grantee.sql(connection)
    version_name = preparer.format_table(version)
    history = [t for t in tables if t.info["acp"] in HISTORY_PRIVILEGES[role]]
    if grantee.dialect != "postgresql":
        statements = []
        for table in tables:
            name, privileges = preparer.format_table(table), _privileges(table, role)
            if table in history:
                # REVOKE ALL fails where nothing was granted: grant first, then narrow.
                statements += [
                    f"GRANT {privileges} ON {name} TO {to}",
                    f"REVOKE ALL PRIVILEGES ON {name} FROM {to}",
                ]
            statements.append(f"GRANT {privileges} ON {name} TO {to}")
        return [*statements, f"GRANT SELECT ON {version_name} TO {to}"]
    others = [t for t in tables if t not in history]
    statements = [
        f"GRANT USAGE ON SCHEMA {preparer.quote_schema(str(layout.schema))} TO {to}",
        f"GRANT {ROW_PRIVILEGES} ON TABLE "
        f"{', '.join(preparer.format_table(t) for t in others)} TO {to}",
    ]
    for table in history:
        name = preparer.format_table(table)
        statements += [
            f"REVOKE ALL ON TABLE {name} FROM {to}",
            f"GRANT {_privileges(table, role)} ON TABLE {name} TO {to}",
        ]
    statements += [
        f"REVOKE ALL ON TABLE {version_name} FROM {to}",
        f"GRANT SELECT ON TABLE {version_name} TO {to}",
    ]
    sequences = [
        sequence
        for table in tables
        for column in table.primary_key.columns
        if (
            sequence := connection.execute(
                select(func.pg_get_serial_sequence(preparer.format_table(table), column.name))
            ).scalar()
        )
    ]
    if sequences:
        statements.append(f"GRANT USAGE, SELECT ON SEQUENCE {', '.join(sequences)} TO {to}")
    return statements


def grant(
    connection: Connection, layout: Layout, grantee: Grantee, role: str = APPLICATION
) -> list[str]:
    """Run the GRANTs in one transaction; return them. A missing role is a clear error."""
    try:
        with connection.begin():
            statements = grant_statements(connection, layout, grantee, role)
            for statement in statements:
                # text() escapes % for the MySQL drivers' format paramstyle.
                connection.execute(text(statement))
    except DBAPIError as exc:
        raise MigrationError(
            f"could not grant ACP's privileges to {grantee}: {str(exc.orig).strip()} "
            "(does the role exist, and may this user grant on ACP's tables?)"
        ) from exc
    return statements


def permission_denied(error: DBAPIError) -> bool:
    """True when the database refused the statement for lack of a privilege."""
    original = error.orig
    if getattr(original, "sqlstate", None) == _PG_DENIED:
        return True
    args: tuple[object, ...] = tuple(getattr(original, "args", ()))
    return bool(args) and args[0] in _MYSQL_DENIED
