"""Dashboard sign-ins kept by the server: signing out ends one for every copy of its cookie.

A sign-in's token lives only in the operator's signed cookie; the row holds its SHA-256,
its API key, when it expires and when it was signed out.

Revision ID: acp_0011
Revises: acp_0010
Create Date: 2026-12-05

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import UTCDateTime

revision = "acp_0011"
down_revision = "acp_0010"
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."
DIGEST, KEY_ID = 64, 32


def _sign_ins() -> sa.Table:
    layout = ddl.layout()
    return sa.Table(
        layout.table_name("sign_ins"),
        ddl.new_metadata(),
        sa.Column("token_hash", sa.String(DIGEST), primary_key=True),
        sa.Column("key_id", sa.String(KEY_ID), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("signed_out_at", UTCDateTime()),
        sa.Index(None, "key_id"),
        sa.Index(None, "expires_at"),
        comment=COMMENT,
        **ddl.table_options(),
    )


def upgrade() -> None:
    ddl.create_tables([_sign_ins()])


def downgrade() -> None:
    ddl.drop_tables([_sign_ins()])
