"""Drop indexes that no query uses: every write paid for them, no read gained.

- events (created_at): each query on event times also names the session, and the
  (session_id, seq) and (session_id, action) indexes serve it.
- token_ledger (org_id | team_id | user_id | agent_id | model, created_at): the usage
  report filters on time only and groups afterwards; the (created_at) index serves it.
- idempotency_keys (created_at): pruning now walks the oldest ids, which grow with time.

A keyed decision wrote six index pages, now four; a settle's ledger row eight, now three.
On SQLite each page is a WAL frame written at commit.

Revision ID: acp_0004
Revises: acp_0003
Create Date: 2026-11-26

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

from alembic import op

from agent_control_plane.migrations import ddl

revision = "acp_0004"
down_revision = "acp_0003"
branch_labels = None
depends_on = None

DROPPED = (
    ("events", ("created_at",)),
    ("idempotency_keys", ("created_at",)),
    ("token_ledger", ("org_id", "created_at")),
    ("token_ledger", ("team_id", "created_at")),
    ("token_ledger", ("user_id", "created_at")),
    ("token_ledger", ("agent_id", "created_at")),
    ("token_ledger", ("model", "created_at")),
)


def _name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    layout = ddl.layout()
    for logical, columns in DROPPED:
        table = layout.table_name(logical)
        op.drop_index(_name(table, columns), table_name=table, schema=layout.schema)


def downgrade() -> None:
    layout = ddl.layout()
    for logical, columns in reversed(DROPPED):
        table = layout.table_name(logical)
        op.create_index(_name(table, columns), table, list(columns), schema=layout.schema)
