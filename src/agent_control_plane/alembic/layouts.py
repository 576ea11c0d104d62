"""The ACP layouts a host's database may hold: defaults, configured, and detected."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

from sqlalchemy import Select, String, column, inspect, select, table
from sqlalchemy.engine import Connection

from agent_control_plane.schema.layout import (
    DEFAULT_SCHEMA,
    DEFAULT_TABLE_PREFIX,
    VERSION_TABLE_SUFFIX,
    Layout,
)

log = logging.getLogger(__name__)

# ACP's revision ids; a version table holding one of them is ours, whatever its name.
ACP_REVISION_RE = re.compile(r"^acp_\d{4}")
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "mysql", "sys"})


def configured_layouts(
    schema: str | None = None,
    table_prefix: str | None = None,
    extra: Iterable[Layout] = (),
) -> set[Layout]:
    """Every layout ACP uses by default, plus those named in code or in ACP_* variables."""
    layouts = {Layout(DEFAULT_SCHEMA, ""), Layout(None, DEFAULT_TABLE_PREFIX), *extra}
    for chosen_schema, chosen_prefix in (
        (schema, table_prefix),
        (os.environ.get("ACP_SCHEMA") or None, os.environ.get("ACP_TABLE_PREFIX")),
    ):
        if chosen_schema is not None:
            layouts.add(Layout(chosen_schema, chosen_prefix or ""))
        if chosen_prefix:
            layouts.add(Layout(None, chosen_prefix))
            layouts.add(Layout(chosen_schema or DEFAULT_SCHEMA, chosen_prefix))
    return layouts


def detect_layouts(connection: Connection) -> set[Layout]:
    """Find ACP's version tables in every visible schema and derive their layouts."""
    inspector = inspect(connection)
    schemas: list[str | None] = [None]
    if connection.dialect.name == "postgresql":
        default = connection.dialect.default_schema_name
        schemas += [
            s
            for s in inspector.get_schema_names()
            if s not in _SYSTEM_SCHEMAS and not s.startswith("pg_") and s != default
        ]
    found: set[Layout] = set()
    for schema in schemas:
        for name in inspector.get_table_names(schema=schema):
            if not name.endswith(VERSION_TABLE_SUFFIX):
                continue
            columns = {c["name"] for c in inspector.get_columns(name, schema=schema)}
            if "version_num" in columns and _holds_acp_revision(connection, name, schema):
                found.add(Layout(schema, name[: -len(VERSION_TABLE_SUFFIX)]))
    return found


def _holds_acp_revision(connection: Connection, name: str, schema: str | None) -> bool:
    query: Select[str] = select(column("version_num", String())).select_from(
        table(name, schema=schema)
    )
    try:
        if connection.dialect.name == "postgresql":
            # A failed read must not abort the host's migration transaction.
            with connection.begin_nested():
                versions = connection.execute(query).scalars().all()
        else:
            versions = connection.execute(query).scalars().all()
    except Exception as exc:  # unreadable: not evidence either way
        log.debug("cannot read %s.%s: %s", schema, name, exc)
        return False
    return any(isinstance(v, str) and ACP_REVISION_RE.match(v) for v in versions)
