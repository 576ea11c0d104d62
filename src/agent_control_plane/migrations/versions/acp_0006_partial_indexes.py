"""Index only the rows queries look for (SQLite and PostgreSQL; MySQL/MariaDB has no
partial indexes and keeps indexing every row).

- events (kind, id): no decision. Decisions are most events; a feed of decisions walks
  the ids. Every decision wrote a page of this index for nothing.
- token_reservations (status, expires_at): held ones. The expiry sweep looks for nothing
  else, and a settle no longer moves its entry to the settled part of the index.
- token_reservations (session_id), token_ledger (session_id | reservation_id): rows that
  have one. No lookup is for a NULL value.

On SQLite every index page a transaction changes is a WAL frame written at commit.

Revision ID: acp_0006
Revises: acp_0005
Create Date: 2026-11-26

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl

revision = "acp_0006"
down_revision = "acp_0005"
branch_labels = None
depends_on = None

PARTIAL = (
    ("events", ("kind", "id"), "kind <> 'decision'"),
    ("token_reservations", ("status", "expires_at"), "status = 'held'"),
    ("token_reservations", ("session_id",), "session_id IS NOT NULL"),
    ("token_ledger", ("session_id",), "session_id IS NOT NULL"),
    ("token_ledger", ("reservation_id",), "reservation_id IS NOT NULL"),
)


def _name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def _rebuild(*, partial: bool) -> None:
    if op.get_bind().dialect.name not in ("sqlite", "postgresql"):
        return
    layout = ddl.layout()
    for logical, columns, where in PARTIAL:
        table = layout.table_name(logical)
        name = _name(table, columns)
        op.drop_index(name, table_name=table, schema=layout.schema)
        options: dict[str, Any] = {}
        if partial:
            options = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
        op.create_index(name, table, list(columns), schema=layout.schema, **options)


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
