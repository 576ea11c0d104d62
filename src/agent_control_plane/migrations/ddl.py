"""What a revision needs: the layout it runs for, and DDL that works online and offline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from alembic import op
from sqlalchemy import MetaData, Table
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable, SetTableComment

from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.tables import NAMING_CONVENTION

# Set by whoever runs our revisions: ACP's env.py, or host-managed mode inside
# a host revision. A contextvar, because the host's alembic config knows nothing of us.
_active_layout: ContextVar[Layout | None] = ContextVar("acp_active_layout", default=None)


@contextmanager
def running_for(layout: Layout) -> Iterator[None]:
    token = _active_layout.set(layout)
    try:
        yield
    finally:
        _active_layout.reset(token)


def layout() -> Layout:
    """The layout the current revision must create its objects in."""
    current = _active_layout.get()
    if current is None:
        raise RuntimeError(
            "ACP revisions run only through agent_control_plane (ControlPlane.open, "
            "`acp db upgrade` or agent_control_plane.alembic.host.upgrade)."
        )
    return current


def new_metadata() -> MetaData:
    """A MetaData for a revision's frozen tables, in the active layout."""
    return MetaData(schema=layout().schema, naming_convention=NAMING_CONVENTION)


def table_options() -> dict[str, Any]:
    """Per-dialect table options: on MySQL/MariaDB, utf8mb4 with a binary, no-pad collation.

    Binary and no-pad, so that keys compare exactly as on PostgreSQL and SQLite:
    'Key' differs from 'key', and 'key ' from 'key'.
    """
    dialect = op.get_context().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return {}
    mariadb = getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb"
    collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": collation}


def create_tables(tables: list[Table]) -> None:
    """Emit CREATE TABLE, its indexes and its comment through the running ``op``.

    ``op.execute`` of DDL elements works online, offline (``--sql``) and inside a
    host's revision, and keeps our naming convention whatever the host's is.
    """
    dialect = op.get_context().dialect
    for table in tables:
        op.execute(CreateTable(table))
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            op.execute(CreateIndex(index))
        if table.comment and dialect.supports_comments and not dialect.inline_comments:
            op.execute(SetTableComment(table))


def drop_tables(tables: list[Table]) -> None:
    for table in reversed(tables):
        op.execute(DropTable(table))
