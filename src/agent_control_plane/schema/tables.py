"""ACP's tables, defined once and built for a layout (schema and/or table prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.schema import SchemaItem

from agent_control_plane.rules.keys import Role
from agent_control_plane.rules.lengths import (
    DIGEST_LENGTH,
    ID_LENGTH,
    KEY_ID_LENGTH,
    KEY_LENGTH,
    RESOURCE_LENGTH,
    TEXT_LENGTH,
)
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.types import BigSerial, JSONDocument, Money, UTCDateTime
from agent_control_plane.statuses import (
    KillScope,
    ReservationStatus,
    SessionStatus,
    TicketStatus,
    values,
)

# Short, deterministic names: every constraint and index name carries its
# table's physical name, so names stay unique per schema (PostgreSQL) and per
# database (MySQL foreign keys) whatever the layout.
NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

TABLE_COMMENT = "Owned by agent-control-plane; changed only by its migrations."


SESSION_STATUSES = values(SessionStatus)
TICKET_STATUSES = values(TicketStatus)
RESERVATION_STATUSES = values(ReservationStatus)
API_KEY_ROLES = values(Role)
KILL_SCOPES = values(KillScope)

LOGICAL_TABLES = (
    "policies",
    "sessions",
    "events",
    "action_proposals",
    "approval_tickets",
    "agents",
    "delegations",
    "idempotency_keys",
    "token_budgets",
    "token_windows",
    "token_ledger",
    "token_reservations",
    "api_keys",
    "kill_switches",
    "token_budget_epoch",
    "audit_anchors",
    "sign_ins",
)

# What the baseline revision created: any database ACP ever made holds all of these.
BASELINE_TABLES = LOGICAL_TABLES[: LOGICAL_TABLES.index("token_reservations") + 1]


@dataclass(frozen=True, slots=True)
class AcpTables:
    """The MetaData and every Table of one layout."""

    layout: Layout
    metadata: MetaData
    policies: Table
    sessions: Table
    events: Table
    action_proposals: Table
    approval_tickets: Table
    agents: Table
    delegations: Table
    idempotency_keys: Table
    token_budgets: Table
    token_windows: Table
    token_ledger: Table
    token_reservations: Table
    api_keys: Table
    kill_switches: Table
    token_budget_epoch: Table
    audit_anchors: Table
    sign_ins: Table

    def all(self) -> tuple[Table, ...]:
        return tuple(getattr(self, name) for name in LOGICAL_TABLES)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _id(name: str = "id") -> Column[object]:
    return Column(name, Uuid(), primary_key=True)


def _created() -> Column[object]:
    return Column("created_at", UTCDateTime(), nullable=False)


def partial(where: str) -> dict[str, Any]:
    """Index options for an index of only the rows that ``where`` selects, on SQLite and
    PostgreSQL. MySQL/MariaDB has no partial indexes, so there the index holds every row.
    A query that should use the index states ``where`` as a literal, so that each
    database's planner sees it implied (a bound parameter would hide it)."""
    return {"sqlite_where": text(where), "postgresql_where": text(where)}


# The conditions of the partial indexes; queries repeat them with these literals.
NOT_A_DECISION = "kind <> 'decision'"
HELD = f"status = '{ReservationStatus.HELD}'"
WITH_SESSION = "session_id IS NOT NULL"
WITH_RESERVATION = "reservation_id IS NOT NULL"


def _identity_columns() -> list[Column[object]]:
    return [
        Column("org_id", String(ID_LENGTH)),
        Column("team_id", String(ID_LENGTH)),
        Column("user_id", String(ID_LENGTH)),
        Column("agent_id", String(ID_LENGTH)),
    ]


@lru_cache(maxsize=32)
def build_tables(layout: Layout) -> AcpTables:
    """Build (once per layout) the MetaData holding every ACP table."""
    md = MetaData(schema=layout.schema, naming_convention=NAMING_CONVENTION)

    def table(logical: str, *items: SchemaItem) -> Table:
        return Table(
            layout.table_name(logical),
            md,
            *items,
            comment=TABLE_COMMENT,
            info={"acp": logical},
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )

    def ref(logical: str, column: str = "id") -> str:
        prefix = f"{layout.schema}." if layout.schema else ""
        return f"{prefix}{layout.table_name(logical)}.{column}"

    policies = table(
        "policies",
        _id(),
        Column("name", String(ID_LENGTH), nullable=False),
        Column("version", BigInteger(), nullable=False),
        Column("digest", String(DIGEST_LENGTH), nullable=False),
        Column("document", JSONDocument, nullable=False),
        _created(),
        UniqueConstraint("name", "version"),
        UniqueConstraint("digest"),
    )

    sessions = table(
        "sessions",
        _id(),
        Column("name", String(ID_LENGTH)),
        Column("agent_id", String(ID_LENGTH), nullable=False),
        Column("tenant", String(ID_LENGTH)),
        Column("policy_id", Uuid(), ForeignKey(ref("policies")), nullable=False),
        Column("status", String(16), nullable=False),
        Column("max_cost", Money(), nullable=False),
        Column("cost_used", Money(), nullable=False),
        Column("max_actions", BigInteger(), nullable=False),
        Column("actions_used", BigInteger(), nullable=False),
        # The chain head (next event seq, last event hash) lives on the row every
        # governed decision already locks: read with the charge, it is always the
        # latest committed head, whatever the isolation level.
        Column("next_seq", BigInteger(), nullable=False),
        Column("last_event_hash", String(DIGEST_LENGTH)),
        Column("expires_at", UTCDateTime()),
        Column("metadata", JSONDocument),
        _created(),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("heartbeat_at", UTCDateTime()),
        Column("ended_at", UTCDateTime()),
        Column("end_reason", String(ID_LENGTH)),
        # After old events are pruned, audit verification starts from this seq and hash.
        Column("pruned_seq", BigInteger()),
        Column("pruned_hash", String(DIGEST_LENGTH)),
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        CheckConstraint("cost_used >= 0 AND actions_used >= 0", name="usage"),
        Index(None, "agent_id", "status"),
        Index(None, "tenant", "status"),
        Index(None, "status", "created_at"),
        Index(None, "created_at", "id"),
        Index(None, "policy_id"),
        Index(None, "status", "heartbeat_at"),
    )

    events = table(
        "events",
        Column("id", BigSerial, primary_key=True, autoincrement=True),
        Column("session_id", Uuid(), ForeignKey(ref("sessions")), nullable=False),
        Column("seq", BigInteger(), nullable=False),
        Column("kind", String(64), nullable=False),
        Column("action", String(ID_LENGTH)),
        Column("outcome", String(32)),
        Column("reason", String(ID_LENGTH)),
        Column("cost", Money()),
        Column("payload", JSONDocument),
        _created(),
        Column("prev_hash", String(DIGEST_LENGTH), nullable=False),
        Column("hash", String(DIGEST_LENGTH), nullable=False),
        # The session's counters after this event, in its link: a reset counter shows.
        Column("cost_used", Money()),
        Column("actions_used", BigInteger()),
        # The id of the audit key the link is keyed with; the key is never stored.
        Column("key_id", String(KEY_ID_LENGTH)),
        UniqueConstraint("session_id", "seq"),
        # Decisions are most events: a feed of decisions walks the ids and finds them
        # at once, so indexing them by kind would only cost every decision a page.
        Index(None, "kind", "id", **partial(NOT_A_DECISION)),
        Index(None, "session_id", "action"),
    )

    action_proposals = table(
        "action_proposals",
        _id(),
        Column("session_id", Uuid(), ForeignKey(ref("sessions")), nullable=False),
        Column("policy_id", Uuid(), ForeignKey(ref("policies")), nullable=False),
        Column("event_seq", BigInteger(), nullable=False),
        Column("action", String(ID_LENGTH), nullable=False),
        Column("resource", String(RESOURCE_LENGTH)),
        Column("args", JSONDocument),
        Column("args_digest", String(DIGEST_LENGTH), nullable=False),
        Column("cost", Money(), nullable=False),
        Column("actual_cost", Money()),
        Column("weight", Float()),
        Column("score", Float()),
        Column("outcome", String(32), nullable=False),
        Column("reason", String(ID_LENGTH), nullable=False),
        Column("status", String(16), nullable=False),
        Column("result", JSONDocument),
        _created(),
        Column("completed_at", UTCDateTime()),
        Index(None, "session_id", "action", "args_digest"),
        Index(None, "policy_id"),
    )

    approval_tickets = table(
        "approval_tickets",
        _id(),
        Column("session_id", Uuid(), ForeignKey(ref("sessions")), nullable=False),
        Column("proposal_id", Uuid(), ForeignKey(ref("action_proposals"))),
        Column("policy_id", Uuid(), ForeignKey(ref("policies")), nullable=False),
        Column("action", String(ID_LENGTH), nullable=False),
        Column("resource", String(RESOURCE_LENGTH)),
        Column("args_digest", String(DIGEST_LENGTH), nullable=False),
        Column("status", String(16), nullable=False),
        Column("scope", String(16)),
        Column("scope_resources", JSONDocument),
        Column("scope_max_cost", Money()),
        Column("scope_max_count", BigInteger()),
        Column("scope_used_cost", Money(), nullable=False),
        Column("scope_used_count", BigInteger(), nullable=False),
        Column("scope_expires_at", UTCDateTime()),
        Column("requested_at", UTCDateTime(), nullable=False),
        Column("expires_at", UTCDateTime()),
        Column("decided_at", UTCDateTime()),
        Column("decided_by", String(ID_LENGTH)),
        Column("decision_reason", String(TEXT_LENGTH)),
        Column("consumed_at", UTCDateTime()),
        Column("escalated_at", UTCDateTime()),
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        Index(None, "status", "expires_at"),
        Index(None, "status", "requested_at"),
        Index(None, "session_id", "status"),
        Index(None, "session_id", "action", "args_digest"),
        Index(None, "proposal_id"),
        Index(None, "policy_id"),
    )

    agents = table(
        "agents",
        Column("id", String(ID_LENGTH), primary_key=True),
        Column("tenant", String(ID_LENGTH)),
        Column("name", String(ID_LENGTH)),
        Column("status", String(16), nullable=False),
        Column("capabilities", JSONDocument, nullable=False),
        Column("tags", JSONDocument, nullable=False),
        Column("metadata", JSONDocument),
        _created(),
        Column("updated_at", UTCDateTime(), nullable=False),
        Index(None, "tenant"),
    )

    delegations = table(
        "delegations",
        _id(),
        Column("from_agent", String(ID_LENGTH), ForeignKey(ref("agents")), nullable=False),
        Column("to_agent", String(ID_LENGTH), ForeignKey(ref("agents")), nullable=False),
        Column("parent_id", Uuid(), ForeignKey(ref("delegations"))),
        Column("session_id", Uuid(), ForeignKey(ref("sessions"))),
        Column("task", String(TEXT_LENGTH), nullable=False),
        Column("capability", String(ID_LENGTH)),
        Column("depth", Integer(), nullable=False),
        Column("status", String(16), nullable=False),
        Column("reason", String(ID_LENGTH)),
        _created(),
        Index(None, "from_agent"),
        Index(None, "to_agent"),
        Index(None, "parent_id"),
        Index(None, "session_id"),
    )

    idempotency_keys = table(
        "idempotency_keys",
        Column("id", BigSerial, primary_key=True, autoincrement=True),
        Column("scope", String(KEY_LENGTH), nullable=False),
        Column("key", String(KEY_LENGTH), nullable=False),
        Column("request_digest", String(DIGEST_LENGTH), nullable=False),
        Column("result", JSONDocument, nullable=False),
        _created(),
        # Pruned oldest id first (ids grow with time): no created_at index to write.
        UniqueConstraint("scope", "key"),
    )

    token_budgets = table(
        "token_budgets",
        _id(),
        Column("scope_key", String(KEY_LENGTH), nullable=False),
        *_identity_columns(),
        Column("session_id", Uuid(), ForeignKey(ref("sessions"))),
        Column("period", String(32), nullable=False),
        Column("timezone", String(64), nullable=False),
        Column("max_tokens", BigInteger()),
        Column("max_cost_usd", Money()),
        Column("max_requests", BigInteger()),
        Column("allowed_models", JSONDocument),
        Column("denied_models", JSONDocument),
        Column("soft_limit_ratio", Numeric(5, 4)),
        _created(),
        Column("updated_at", UTCDateTime(), nullable=False),
        UniqueConstraint("scope_key", "period"),
        Index(None, "session_id"),
    )

    token_windows = table(
        "token_windows",
        Column(
            "budget_id",
            Uuid(),
            ForeignKey(ref("token_budgets"), ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("window_start", UTCDateTime(), primary_key=True),
        Column("tokens_used", BigInteger(), nullable=False),
        Column("cost_used", Money(), nullable=False),
        Column("requests_used", BigInteger(), nullable=False),
        Column("tokens_reserved", BigInteger(), nullable=False),
        Column("cost_reserved", Money(), nullable=False),
        Column("requests_reserved", BigInteger(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )

    token_reservations = table(
        "token_reservations",
        _id(),
        *_identity_columns(),
        Column("session_id", Uuid(), ForeignKey(ref("sessions"))),
        Column("model", String(ID_LENGTH), nullable=False),
        Column("input_tokens", BigInteger(), nullable=False),
        Column("max_output_tokens", BigInteger(), nullable=False),
        Column("reserved_tokens", BigInteger(), nullable=False),
        Column("reserved_cost", Money(), nullable=False),
        Column("holds", JSONDocument, nullable=False),
        Column("status", String(16), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
        _created(),
        Column("settled_at", UTCDateTime()),
        CheckConstraint(_in("status", RESERVATION_STATUSES), name="status"),
        # The expiry sweep looks for held reservations only; settled ones leave the index.
        Index(None, "status", "expires_at", **partial(HELD)),
        Index(None, "session_id", **partial(WITH_SESSION)),
    )

    token_ledger = table(
        "token_ledger",
        Column("id", BigSerial, primary_key=True, autoincrement=True),
        Column("reservation_id", Uuid(), ForeignKey(ref("token_reservations"))),
        *_identity_columns(),
        Column("session_id", Uuid(), ForeignKey(ref("sessions"))),
        Column("model", String(ID_LENGTH), nullable=False),
        Column("input_tokens", BigInteger(), nullable=False),
        Column("output_tokens", BigInteger(), nullable=False),
        Column("cached_input_tokens", BigInteger(), nullable=False),
        Column("total_tokens", BigInteger(), nullable=False),
        Column("cost_usd", Money(), nullable=False),
        _created(),
        # The usage report filters on time and groups afterwards. session_id and
        # reservation_id back foreign keys (InnoDB needs them) and the settle lookup;
        # no lookup is for a NULL one.
        Index(None, "created_at"),
        Index(None, "session_id", **partial(WITH_SESSION)),
        Index(None, "reservation_id", **partial(WITH_RESERVATION)),
    )

    api_keys = table(
        "api_keys",
        _id(),
        # The public half of a key: shown in listings and used to find the row.
        Column("key_id", String(32), nullable=False),
        # SHA-256 of the secret half; keys are 256-bit random, so a slow hash adds nothing.
        Column("secret_hash", String(DIGEST_LENGTH), nullable=False),
        Column("name", String(ID_LENGTH)),
        Column("role", String(16), nullable=False),
        Column("tenant", String(ID_LENGTH)),
        _created(),
        Column("last_used_at", UTCDateTime()),
        Column("revoked_at", UTCDateTime()),
        # An agent key's agents: exact ids or ``*`` patterns (a JSON list); NULL acts as none.
        Column("agents", JSONDocument),
        Column("expires_at", UTCDateTime()),
        CheckConstraint(_in("role", API_KEY_ROLES), name="role"),
        UniqueConstraint("key_id"),
        Index(None, "tenant"),
    )

    kill_switches = table(
        "kill_switches",
        # A standing kill of an agent, a tenant or everything: no session opens in its scope
        # until it is lifted. '' stands for "any" (tenant, agent_id are never empty).
        Column("scope", String(16), primary_key=True),
        Column("tenant", String(ID_LENGTH), primary_key=True),
        Column("agent_id", String(ID_LENGTH), primary_key=True),
        Column("active", Boolean(), nullable=False),
        Column("reason", String(ID_LENGTH)),
        Column("killed_at", UTCDateTime()),
        Column("killed_by", String(ID_LENGTH)),
        Column("lifted_at", UTCDateTime()),
        Column("lifted_by", String(ID_LENGTH)),
        CheckConstraint(_in("scope", KILL_SCOPES), name="scope"),
    )

    token_budget_epoch = table(
        "token_budget_epoch",
        # One row, counted up in the transaction of every change to token budgets: a
        # process may reuse the budgets it read while the count is unchanged.
        Column("id", Integer(), primary_key=True, autoincrement=False),
        Column("epoch", BigInteger(), nullable=False),
    )

    audit_anchors = table(
        "audit_anchors",
        # One row per prune, backing the session's prune marker: written by the maintenance
        # role (signed with the audit key, if any), only read by the application's role.
        Column("session_id", Uuid(), ForeignKey(ref("sessions")), primary_key=True),
        Column("seq", BigInteger(), primary_key=True, autoincrement=False),
        Column("hash", String(DIGEST_LENGTH), nullable=False),
        Column("cost_used", Money()),
        Column("actions_used", BigInteger()),
        _created(),
        Column("key_id", String(KEY_ID_LENGTH)),
        Column("signature", String(DIGEST_LENGTH)),
    )

    sign_ins = table(
        "sign_ins",
        # A dashboard sign-in, ended by signing out or by its expiry: the SHA-256 of its
        # random token (the token itself is only in the operator's cookie) and its key.
        Column("token_hash", String(DIGEST_LENGTH), primary_key=True),
        Column("key_id", String(32), nullable=False),
        _created(),
        Column("expires_at", UTCDateTime(), nullable=False),
        Column("signed_out_at", UTCDateTime()),
        Index(None, "key_id"),
        Index(None, "expires_at"),
    )

    return AcpTables(
        layout=layout,
        metadata=md,
        policies=policies,
        sessions=sessions,
        events=events,
        action_proposals=action_proposals,
        approval_tickets=approval_tickets,
        agents=agents,
        delegations=delegations,
        idempotency_keys=idempotency_keys,
        token_budgets=token_budgets,
        token_windows=token_windows,
        token_ledger=token_ledger,
        token_reservations=token_reservations,
        api_keys=api_keys,
        kill_switches=kill_switches,
        token_budget_epoch=token_budget_epoch,
        audit_anchors=audit_anchors,
        sign_ins=sign_ins,
    )
