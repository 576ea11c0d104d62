"""Stub tables that let a host's models hold foreign keys to ACP's tables."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Uuid

from agent_control_plane.schema.layout import resolve_layout


def acp_table_stub(
    metadata: MetaData,
    logical_name: str,
    *,
    dialect: str,
    schema: str | None = None,
    table_prefix: str | None = None,
) -> Table:
    """Declare ACP table ``logical_name`` (e.g. "sessions") in the host's ``metadata``.

    Only the ``id`` column is declared: enough for ``ForeignKey(stub.c.id)``. The
    guard and :func:`include_acp_tables` keep the stub out of autogenerate.
    """
    layout = resolve_layout(dialect, schema=schema, table_prefix=table_prefix)
    return Table(
        layout.table_name(logical_name),
        metadata,
        Column("id", Uuid(), primary_key=True),
        schema=layout.schema,
        info={"acp": logical_name},
        extend_existing=True,
    )
