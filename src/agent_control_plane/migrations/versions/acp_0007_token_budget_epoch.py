"""A counter of token budget changes, so a reservation need not read the budgets each time.

Every change to token budgets counts it up in its own transaction. reserve_tokens keeps the
budgets it read for an identity with the count it read them at, and its first hold only
applies while the count is unchanged: one statement fewer per reservation, never a stale
budget.

Revision ID: acp_0007
Revises: acp_0006
Create Date: 2026-11-26

Once this file lands on main it is never edited: later changes are new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent_control_plane.migrations import ddl

revision = "acp_0007"
down_revision = "acp_0006"
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."


def _epoch() -> sa.Table:
    layout = ddl.layout()
    return sa.Table(
        layout.table_name("token_budget_epoch"),
        ddl.new_metadata(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        comment=COMMENT,
        **ddl.table_options(),
    )


def upgrade() -> None:
    table = _epoch()
    ddl.create_tables([table])
    op.bulk_insert(table, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    ddl.drop_tables([_epoch()])
