"""API keys name the agents they act as, and may expire.

An agent key carries the agents it may act as (exact ids or ``*`` patterns, a JSON list);
a key made before this revision names none, so it acts as no agent until replaced (fail
closed). Any key may carry an expiry, after which it authenticates as ``expired``.

Revision ID: acp_0008
Revises: acp_0007
Create Date: 2026-11-27

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import JSONDocument, UTCDateTime

revision = "acp_0008"
down_revision = "acp_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    layout = ddl.layout()
    with op.batch_alter_table(layout.table_name("api_keys"), schema=layout.schema) as batch:
        batch.add_column(sa.Column("agents", JSONDocument, nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    layout = ddl.layout()
    with op.batch_alter_table(layout.table_name("api_keys"), schema=layout.schema) as batch:
        batch.drop_column("expires_at")
        batch.drop_column("agents")
