"""Operator surfaces: API keys, approval escalation, heartbeat recovery, event pruning anchors.

Revision ID: acp_0003
Revises: acp_0002
Create Date: 2026-11-26

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import UTCDateTime

revision = "acp_0003"
down_revision = "acp_0002"
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."
ID, DIGEST = 200, 64
ROLES = ("agent", "approver", "admin", "viewer")


def _api_keys() -> sa.Table:
    layout = ddl.layout()
    return sa.Table(
        layout.table_name("api_keys"),
        ddl.new_metadata(),
        sa.Column("id", sa.Uuid(), primary_key=True),
        # The public half of a key: shown in listings and used to find the row.
        sa.Column("key_id", sa.String(32), nullable=False),
        # SHA-256 of the secret half; keys are 256-bit random, so a slow hash adds nothing.
        sa.Column("secret_hash", sa.String(DIGEST), nullable=False),
        sa.Column("name", sa.String(ID)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(ID)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role"),
        sa.UniqueConstraint("key_id"),
        sa.Index(None, "tenant"),
        comment=COMMENT,
        **ddl.table_options(),
    )


def upgrade() -> None:
    layout = ddl.layout()
    ddl.create_tables([_api_keys()])
    tickets = layout.table_name("approval_tickets")
    sessions = layout.table_name("sessions")
    with op.batch_alter_table(tickets, schema=layout.schema) as batch:
        batch.add_column(sa.Column("escalated_at", UTCDateTime(), nullable=True))
    op.create_index(
        f"ix_{tickets}_status_requested_at",
        tickets,
        ["status", "requested_at"],
        schema=layout.schema,
    )
    with op.batch_alter_table(sessions, schema=layout.schema) as batch:
        # After events are pruned, verification starts from this seq and hash.
        batch.add_column(sa.Column("pruned_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("pruned_hash", sa.String(DIGEST), nullable=True))
    op.create_index(
        f"ix_{sessions}_status_heartbeat_at",
        sessions,
        ["status", "heartbeat_at"],
        schema=layout.schema,
    )


def downgrade() -> None:
    layout = ddl.layout()
    tickets = layout.table_name("approval_tickets")
    sessions = layout.table_name("sessions")
    op.drop_index(f"ix_{sessions}_status_heartbeat_at", table_name=sessions, schema=layout.schema)
    with op.batch_alter_table(sessions, schema=layout.schema) as batch:
        batch.drop_column("pruned_hash")
        batch.drop_column("pruned_seq")
    op.drop_index(f"ix_{tickets}_status_requested_at", table_name=tickets, schema=layout.schema)
    with op.batch_alter_table(tickets, schema=layout.schema) as batch:
        batch.drop_column("escalated_at")
    ddl.drop_tables([_api_keys()])
