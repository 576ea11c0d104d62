"""Where ACP's tables live: a dedicated schema on PostgreSQL, a table prefix elsewhere."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_control_plane.errors import ConfigurationError

DEFAULT_SCHEMA = "acp"
DEFAULT_TABLE_PREFIX = "acp_"
VERSION_TABLE_SUFFIX = "version"

# Lower-case identifiers need no quoting on any of the three databases, so the
# names a DBA types in psql, mysql or sqlite3 are the names we created.
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
# 12 characters keep the longest index name within PostgreSQL's 63 (tested).
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,11}$")
# Schemas that belong to the host or the server: tables there need a prefix.
_SHARED_SCHEMAS = frozenset({"public"})
_RESERVED_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})

SCHEMA_DIALECTS = frozenset({"postgresql"})


@dataclass(frozen=True, slots=True)
class Layout:
    """The physical home of ACP's objects in one database.

    ``schema`` is None when the tables live in the connection's default schema
    (SQLite, MySQL/MariaDB); ``table_prefix`` is prepended to every table name.
    """

    schema: str | None
    table_prefix: str

    def table_name(self, logical: str) -> str:
        return f"{self.table_prefix}{logical}"

    @property
    def version_table(self) -> str:
        return self.table_name(VERSION_TABLE_SUFFIX)

    @property
    def owns_schema(self) -> bool:
        """True when every object in ``schema`` is ours (a dedicated schema)."""
        return self.schema is not None and self.schema not in _SHARED_SCHEMAS

    def describe(self) -> str:
        where = f"schema {self.schema}" if self.schema else "the default schema"
        prefix = f"prefix {self.table_prefix!r}" if self.table_prefix else "no prefix"
        return f"{where}, {prefix}"


def resolve_layout(
    dialect_name: str, *, schema: str | None = None, table_prefix: str | None = None
) -> Layout:
    """Validate the requested names and apply each dialect's defaults.

    PostgreSQL: schema ``acp`` and no prefix unless told otherwise.
    SQLite, MySQL and MariaDB: prefix ``acp_``; they have no schema option.
    """
    if dialect_name in SCHEMA_DIALECTS:
        schema = DEFAULT_SCHEMA if schema is None else _valid_schema(schema)
        prefix = "" if table_prefix is None else _valid_prefix(table_prefix)
        layout = Layout(schema=schema, table_prefix=prefix)
        if not layout.owns_schema and not prefix:
            raise ConfigurationError(
                f"schema {schema!r} is shared with the application: give ACP a table_prefix "
                "(for example table_prefix='acp_') or a schema of its own (the default, 'acp')."
            )
        return layout
    if schema is not None:
        raise ConfigurationError(
            f"schema={schema!r} is only supported on PostgreSQL; on {dialect_name} ACP keeps "
            "its tables apart with table_prefix= (default 'acp_')."
        )
    prefix = DEFAULT_TABLE_PREFIX if table_prefix is None else _valid_prefix(table_prefix)
    if not prefix:
        raise ConfigurationError(
            f"table_prefix must not be empty on {dialect_name}: without it ACP's tables "
            "(sessions, events, ...) would mix with the application's."
        )
    return Layout(schema=None, table_prefix=prefix)


def _valid_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema) or schema in _RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use 1-40 lower-case letters, digits and "
            "underscores, starting with a letter or underscore, and not a system schema."
        )
    return schema


def _valid_prefix(prefix: str) -> str:
    if prefix and not _PREFIX_RE.match(prefix):
        raise ConfigurationError(
            f"invalid table prefix {prefix!r}: use 1-12 lower-case letters, digits and "
            "underscores, starting with a letter (for example 'acp_')."
        )
    return prefix
