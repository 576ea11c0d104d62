"""Standing kills: a killed agent, tenant or database opens no new session until lifted.

Revision ID: acp_0005
Revises: acp_0004
Create Date: 2026-11-26

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import UTCDateTime

revision = "acp_0005"
down_revision = "acp_0004"
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."
ID = 200
SCOPES = ("agent", "tenant", "all")


def _kill_switches() -> sa.Table:
    layout = ddl.layout()
    return sa.Table(
        layout.table_name("kill_switches"),
        ddl.new_metadata(),
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("tenant", sa.String(ID), primary_key=True),
        sa.Column("agent_id", sa.String(ID), primary_key=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(ID)),
        sa.Column("killed_at", UTCDateTime()),
        sa.Column("killed_by", sa.String(ID)),
        sa.Column("lifted_at", UTCDateTime()),
        sa.Column("lifted_by", sa.String(ID)),
        sa.CheckConstraint(f"scope IN ({', '.join(repr(s) for s in SCOPES)})", name="scope"),
        comment=COMMENT,
        **ddl.table_options(),
    )


def upgrade() -> None:
    ddl.create_tables([_kill_switches()])


def downgrade() -> None:
    ddl.drop_tables([_kill_switches()])
