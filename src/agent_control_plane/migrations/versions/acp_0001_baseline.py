"""Baseline: every table of agent-control-plane's foundation.

Revision ID: acp_0001
Revises:
Create Date: 2026-11-25

Once this file lands on main it is never edited: later changes are new revisions.
The tables are spelled out here (not imported from agent_control_plane.schema)
so that this revision keeps creating exactly what it created the day it shipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import SchemaItem

from agent_control_plane.migrations import ddl
from agent_control_plane.schema.types import BigSerial, JSONDocument, Money, UTCDateTime

revision = "acp_0001"
down_revision = None
branch_labels = None
depends_on = None

COMMENT = "Owned by agent-control-plane; changed only by its migrations."
ID, KEY, RESOURCE, TEXT, DIGEST = 200, 255, 500, 2000, 64


def _tables() -> list[sa.Table]:
    layout = ddl.layout()
    md = ddl.new_metadata()
    options = ddl.table_options()

    def table(logical: str, *items: SchemaItem) -> sa.Table:
        return sa.Table(layout.table_name(logical), md, *items, comment=COMMENT, **options)

    def ref(logical: str) -> str:
        schema = f"{layout.schema}." if layout.schema else ""
        return f"{schema}{layout.table_name(logical)}.id"

    def created() -> sa.Column[object]:
        return sa.Column("created_at", UTCDateTime(), nullable=False)

    def identity() -> list[sa.Column[object]]:
        return [sa.Column(f"{part}_id", sa.String(ID)) for part in ("org", "team", "user", "agent")]

    def status_check(*values: str) -> sa.CheckConstraint:
        return sa.CheckConstraint(
            f"status IN ({', '.join(repr(v) for v in values)})", name="status"
        )

    return [
        table(
            "policies",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("name", sa.String(ID), nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.Column("digest", sa.String(DIGEST), nullable=False),
            sa.Column("document", JSONDocument, nullable=False),
            created(),
            sa.UniqueConstraint("name", "version"),
            sa.UniqueConstraint("digest"),
        ),
        table(
            "sessions",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("name", sa.String(ID)),
            sa.Column("agent_id", sa.String(ID), nullable=False),
            sa.Column("tenant", sa.String(ID)),
            sa.Column("policy_id", sa.Uuid(), sa.ForeignKey(ref("policies")), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("max_cost", Money(), nullable=False),
            sa.Column("cost_used", Money(), nullable=False),
            sa.Column("max_actions", sa.BigInteger(), nullable=False),
            sa.Column("actions_used", sa.BigInteger(), nullable=False),
            sa.Column("next_seq", sa.BigInteger(), nullable=False),
            sa.Column("last_event_hash", sa.String(DIGEST)),
            sa.Column("expires_at", UTCDateTime()),
            sa.Column("metadata", JSONDocument),
            created(),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            sa.Column("heartbeat_at", UTCDateTime()),
            sa.Column("ended_at", UTCDateTime()),
            sa.Column("end_reason", sa.String(ID)),
            status_check("created", "active", "paused", "completed", "aborted"),
            sa.CheckConstraint("cost_used >= 0 AND actions_used >= 0", name="usage"),
            sa.Index(None, "agent_id", "status"),
            sa.Index(None, "tenant", "status"),
            sa.Index(None, "status", "created_at"),
            sa.Index(None, "created_at", "id"),
            sa.Index(None, "policy_id"),
        ),
        table(
            "events",
            sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions")), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("kind", sa.String(64), nullable=False),
            sa.Column("action", sa.String(ID)),
            sa.Column("outcome", sa.String(32)),
            sa.Column("reason", sa.String(ID)),
            sa.Column("cost", Money()),
            sa.Column("payload", JSONDocument),
            created(),
            sa.Column("prev_hash", sa.String(DIGEST), nullable=False),
            sa.Column("hash", sa.String(DIGEST), nullable=False),
            sa.UniqueConstraint("session_id", "seq"),
            sa.Index(None, "created_at"),
            sa.Index(None, "kind", "id"),
        ),
        table(
            "action_proposals",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions")), nullable=False),
            sa.Column("policy_id", sa.Uuid(), sa.ForeignKey(ref("policies")), nullable=False),
            sa.Column("event_seq", sa.BigInteger(), nullable=False),
            sa.Column("action", sa.String(ID), nullable=False),
            sa.Column("resource", sa.String(RESOURCE)),
            sa.Column("args", JSONDocument),
            sa.Column("args_digest", sa.String(DIGEST), nullable=False),
            sa.Column("cost", Money(), nullable=False),
            sa.Column("actual_cost", Money()),
            sa.Column("weight", sa.Float()),
            sa.Column("score", sa.Float()),
            sa.Column("outcome", sa.String(32), nullable=False),
            sa.Column("reason", sa.String(ID), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("result", JSONDocument),
            created(),
            sa.Column("completed_at", UTCDateTime()),
            sa.Index(None, "session_id", "action", "args_digest"),
            sa.Index(None, "policy_id"),
        ),
        table(
            "approval_tickets",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions")), nullable=False),
            sa.Column("proposal_id", sa.Uuid(), sa.ForeignKey(ref("action_proposals"))),
            sa.Column("policy_id", sa.Uuid(), sa.ForeignKey(ref("policies")), nullable=False),
            sa.Column("action", sa.String(ID), nullable=False),
            sa.Column("resource", sa.String(RESOURCE)),
            sa.Column("args_digest", sa.String(DIGEST), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("scope", sa.String(16)),
            sa.Column("scope_resources", JSONDocument),
            sa.Column("scope_max_cost", Money()),
            sa.Column("scope_max_count", sa.BigInteger()),
            sa.Column("scope_used_cost", Money(), nullable=False),
            sa.Column("scope_used_count", sa.BigInteger(), nullable=False),
            sa.Column("scope_expires_at", UTCDateTime()),
            sa.Column("requested_at", UTCDateTime(), nullable=False),
            sa.Column("expires_at", UTCDateTime()),
            sa.Column("decided_at", UTCDateTime()),
            sa.Column("decided_by", sa.String(ID)),
            sa.Column("decision_reason", sa.String(TEXT)),
            sa.Column("consumed_at", UTCDateTime()),
            status_check("pending", "approved", "denied", "expired", "consumed"),
            sa.Index(None, "status", "expires_at"),
            sa.Index(None, "session_id", "status"),
            sa.Index(None, "session_id", "action", "args_digest"),
            sa.Index(None, "proposal_id"),
            sa.Index(None, "policy_id"),
        ),
        table(
            "agents",
            sa.Column("id", sa.String(ID), primary_key=True),
            sa.Column("tenant", sa.String(ID)),
            sa.Column("name", sa.String(ID)),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("capabilities", JSONDocument, nullable=False),
            sa.Column("tags", JSONDocument, nullable=False),
            sa.Column("metadata", JSONDocument),
            created(),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            sa.Index(None, "tenant"),
        ),
        table(
            "delegations",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("from_agent", sa.String(ID), sa.ForeignKey(ref("agents")), nullable=False),
            sa.Column("to_agent", sa.String(ID), sa.ForeignKey(ref("agents")), nullable=False),
            sa.Column("parent_id", sa.Uuid(), sa.ForeignKey(ref("delegations"))),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions"))),
            sa.Column("task", sa.String(TEXT), nullable=False),
            sa.Column("capability", sa.String(ID)),
            sa.Column("depth", sa.Integer(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            created(),
            sa.Index(None, "from_agent"),
            sa.Index(None, "to_agent"),
            sa.Index(None, "parent_id"),
            sa.Index(None, "session_id"),
        ),
        table(
            "idempotency_keys",
            sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
            sa.Column("scope", sa.String(KEY), nullable=False),
            sa.Column("key", sa.String(KEY), nullable=False),
            sa.Column("request_digest", sa.String(DIGEST), nullable=False),
            sa.Column("result", JSONDocument, nullable=False),
            created(),
            sa.UniqueConstraint("scope", "key"),
            sa.Index(None, "created_at"),
        ),
        table(
            "token_budgets",
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("scope_key", sa.String(KEY), nullable=False),
            *identity(),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions"))),
            sa.Column("period", sa.String(32), nullable=False),
            sa.Column("timezone", sa.String(64), nullable=False),
            sa.Column("max_tokens", sa.BigInteger()),
            sa.Column("max_cost_usd", Money()),
            sa.Column("max_requests", sa.BigInteger()),
            sa.Column("allowed_models", JSONDocument),
            sa.Column("denied_models", JSONDocument),
            sa.Column("soft_limit_ratio", sa.Numeric(5, 4)),
            created(),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            sa.UniqueConstraint("scope_key", "period"),
            sa.Index(None, "session_id"),
        ),
        table(
            "token_windows",
            sa.Column(
                "budget_id",
                sa.Uuid(),
                sa.ForeignKey(ref("token_budgets"), ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("window_start", UTCDateTime(), primary_key=True),
            sa.Column("tokens_used", sa.BigInteger(), nullable=False),
            sa.Column("cost_used", Money(), nullable=False),
            sa.Column("requests_used", sa.BigInteger(), nullable=False),
            sa.Column("tokens_reserved", sa.BigInteger(), nullable=False),
            sa.Column("cost_reserved", Money(), nullable=False),
            sa.Column("requests_reserved", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
        ),
        table(
            "token_reservations",
            sa.Column("id", sa.Uuid(), primary_key=True),
            *identity(),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions"))),
            sa.Column("model", sa.String(ID), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("max_output_tokens", sa.BigInteger(), nullable=False),
            sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
            sa.Column("reserved_cost", Money(), nullable=False),
            sa.Column("holds", JSONDocument, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("expires_at", UTCDateTime(), nullable=False),
            created(),
            sa.Column("settled_at", UTCDateTime()),
            status_check("held", "settled", "released", "expired"),
            sa.Index(None, "status", "expires_at"),
            sa.Index(None, "session_id"),
        ),
        table(
            "token_ledger",
            sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
            sa.Column("reservation_id", sa.Uuid(), sa.ForeignKey(ref("token_reservations"))),
            *identity(),
            sa.Column("session_id", sa.Uuid(), sa.ForeignKey(ref("sessions"))),
            sa.Column("model", sa.String(ID), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("output_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("total_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cost_usd", Money(), nullable=False),
            created(),
            sa.Index(None, "created_at"),
            sa.Index(None, "org_id", "created_at"),
            sa.Index(None, "team_id", "created_at"),
            sa.Index(None, "user_id", "created_at"),
            sa.Index(None, "agent_id", "created_at"),
            sa.Index(None, "model", "created_at"),
            sa.Index(None, "session_id"),
            sa.Index(None, "reservation_id"),
        ),
    ]


def upgrade() -> None:
    ddl.create_tables(_tables())


def downgrade() -> None:
    ddl.drop_tables(_tables())
