"""Sequence rules and delegation: an index over each session's actions, delegation reasons.

Revision ID: acp_0002
Revises: acp_0001
Create Date: 2026-11-25

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl

revision = "acp_0002"
down_revision = "acp_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    layout = ddl.layout()
    events = layout.table_name("events")
    # Sequence rules count a session's earlier decisions by action inside govern.
    op.create_index(
        f"ix_{events}_session_id_action",
        events,
        ["session_id", "action"],
        schema=layout.schema,
    )
    with op.batch_alter_table(layout.table_name("delegations"), schema=layout.schema) as batch:
        batch.add_column(sa.Column("reason", sa.String(200), nullable=True))


def downgrade() -> None:
    layout = ddl.layout()
    with op.batch_alter_table(layout.table_name("delegations"), schema=layout.schema) as batch:
        batch.drop_column("reason")
    op.drop_index(
        f"ix_{layout.table_name('events')}_session_id_action",
        table_name=layout.table_name("events"),
        schema=layout.schema,
    )
