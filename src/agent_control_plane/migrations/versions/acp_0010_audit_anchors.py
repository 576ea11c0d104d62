"""An audit trail that holds against whoever can write the database.

Each event records the session's counters after it and the id of the audit key its link
is keyed with (the key itself is never stored). Each prune records a signed anchor in a
table of its own, which the application's role may read and never write. The anchors of
earlier prunes move there unsigned, as they were.

Revision ID: acp_0010
Revises: acp_0008
Create Date: 2026-11-27

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import Money, UTCDateTime

revision = "acp_0010"
down_revision = "acp_0008"
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."
DIGEST, KEY_ID = 64, 16


def _anchors() -> sa.Table:
    layout = ddl.layout()
    prefix = f"{layout.schema}." if layout.schema else ""
    metadata = ddl.new_metadata()
    # The sessions table as far as the foreign key needs it (it exists already).
    sa.Table(layout.table_name("sessions"), metadata, sa.Column("id", sa.Uuid(), primary_key=True))
    return sa.Table(
        layout.table_name("audit_anchors"),
        metadata,
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey(f"{prefix}{layout.table_name('sessions')}.id"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(DIGEST), nullable=False),
        sa.Column("cost_used", Money()),
        sa.Column("actions_used", sa.BigInteger()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(KEY_ID)),
        sa.Column("signature", sa.String(DIGEST)),
        comment=COMMENT,
        **ddl.table_options(),
    )


def upgrade() -> None:
    layout = ddl.layout()
    with op.batch_alter_table(layout.table_name("events"), schema=layout.schema) as batch:
        batch.add_column(sa.Column("cost_used", Money(), nullable=True))
        batch.add_column(sa.Column("actions_used", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(KEY_ID), nullable=True))
    anchors = _anchors()
    ddl.create_tables([anchors])
    sessions = sa.table(
        layout.table_name("sessions"),
        sa.column("id", sa.Uuid()),
        sa.column("pruned_seq", sa.BigInteger()),
        sa.column("pruned_hash", sa.String(DIGEST)),
        sa.column("updated_at", UTCDateTime()),
        schema=layout.schema,
    )
    s = sessions.c
    op.execute(
        anchors.insert().from_select(
            ["session_id", "seq", "hash", "created_at"],
            sa.select(s.id, s.pruned_seq, s.pruned_hash, s.updated_at).where(
                s.pruned_seq.is_not(None), s.pruned_hash.is_not(None)
            ),
        )
    )


def downgrade() -> None:
    layout = ddl.layout()
    ddl.drop_tables([_anchors()])
    with op.batch_alter_table(layout.table_name("events"), schema=layout.schema) as batch:
        batch.drop_column("key_id")
        batch.drop_column("actions_used")
        batch.drop_column("cost_used")
