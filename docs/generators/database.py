"""Every database object ACP creates, from the table definitions in schema/tables.py."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from agent_control_plane.schema.layout import resolve_layout
from agent_control_plane.schema.tables import LOGICAL_TABLES, TABLE_COMMENT, build_tables

# What each table holds. A table without a line here fails the docs build.
PURPOSES = {
    "policies": "Policy documents, as immutable versioned snapshots.",
    "sessions": "Sessions: status, budgets and what was used, the audit chain's head.",
    "events": "The hash-chained audit trail: every decision, outcome and change, per session.",
    "action_proposals": "What `govern` was asked, for approval tickets and claims.",
    "approval_tickets": "Approval tickets: pending, approved, denied, expired or consumed.",
    "agents": "Registered agents, their capabilities and tags.",
    "delegations": "Delegations between agents, allowed or refused, with their reason.",
    "idempotency_keys": "The first result of each idempotency key, per tenant and operation.",
    "token_budgets": "Token budgets: scope, period, limits, allowed and denied models.",
    "token_windows": "Each token budget's usage and holds, per period window.",
    "token_ledger": "The token usage ledger: one row per settled or recorded call.",
    "token_reservations": "Token holds made by `reserve_tokens`, until settled or released.",
    "api_keys": "API keys: role, tenant, agents, expiry and the SHA-256 of the secret.",
    "kill_switches": "Standing kills of an agent, a tenant or everything, and their lifts.",
    "token_budget_epoch": "One row: a counter every token budget change counts up.",
    "audit_anchors": "Prune anchors: where a pruned audit chain continues, signed.",
    "sign_ins": "Dashboard sign-ins: the hash of each token, its key, expiry and sign-out.",
}

_DIALECTS: tuple[tuple[str, Dialect], ...] = (
    ("PostgreSQL", postgresql.dialect()),  # type: ignore[no-untyped-call]
    ("MySQL/MariaDB", mysql.dialect()),
    ("SQLite", sqlite.dialect()),
)


def render() -> str:
    """A summary table of every object's name on each dialect, then each table's columns,
    indexes and constraints."""
    postgres = resolve_layout("postgresql")
    prefixed = resolve_layout("sqlite")
    missing = [name for name in LOGICAL_TABLES if name not in PURPOSES]
    if missing:
        raise KeyError(f"docs/generators/database.py: say what these tables hold: {missing}")
    lines = [
        '| table | PostgreSQL (`schema="acp"`) | SQLite, MySQL/MariaDB (`table_prefix="acp_"`) |',
        "|---|---|---|",
    ]
    for name in LOGICAL_TABLES:
        lines.append(
            f"| [{name}](#{name}): {PURPOSES[name]} "
            f"| `{postgres.schema}.{postgres.table_name(name)}` | `{prefixed.table_name(name)}` |"
        )
    lines.append(
        f"| ACP's version table (alembic's, never `alembic_version`) "
        f"| `{postgres.schema}.{postgres.version_table}` | `{prefixed.version_table}` |"
    )
    lines.append(f"| the schema itself | `{postgres.schema}` | — |")
    lines += [
        "",
        f'Every table carries the comment *"{TABLE_COMMENT}"* where the database '
        "supports comments. Names below are for the SQLite and MySQL/MariaDB default "
        "(`acp_` prefix); on PostgreSQL drop the prefix and put `acp.` in front.",
        "",
    ]
    tables = build_tables(prefixed)
    for name in LOGICAL_TABLES:
        lines += _table(name, getattr(tables, name))
    return "\n".join(lines) + "\n"


def _table(logical: str, table: Table) -> list[str]:
    lines = [f"### {logical}", "", f"`{table.name}`: {PURPOSES[logical]}", ""]
    lines.append("| column | " + " | ".join(label for label, _ in _DIALECTS) + " | null |")
    lines.append("|---" * (len(_DIALECTS) + 2) + "|")
    for column in table.columns:
        types = " | ".join(f"`{column.type.compile(dialect=d)}`" for _, d in _DIALECTS)
        key = " (primary key)" if column.primary_key else ""
        lines.append(f"| `{column.name}`{key} | {types} | {'yes' if column.nullable else 'no'} |")
    lines.append("")
    objects = []
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        columns = ", ".join(c.name for c in getattr(constraint, "columns", ()))
        if isinstance(constraint, ForeignKeyConstraint):
            target = ", ".join(
                f"{element.column.table.name}.{element.column.name}"
                for element in constraint.elements
            )
            objects.append(f"`{constraint.name}`: foreign key ({columns}) → {target}")
        elif isinstance(constraint, UniqueConstraint):
            objects.append(f"`{constraint.name}`: unique ({columns})")
        elif isinstance(constraint, CheckConstraint):
            objects.append(f"`{constraint.name}`: check `{constraint.sqltext}`")
        else:
            objects.append(f"`{constraint.name}`: primary key ({columns})")
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        columns = ", ".join(c.name for c in index.columns)
        kind = "unique index" if index.unique else "index"
        where = index.dialect_options["postgresql"].get("where")
        partial = ""
        if where is not None:
            partial = f", partial: `WHERE {where}` (all rows on MySQL/MariaDB)"
        objects.append(f"`{index.name}`: {kind} ({columns}){partial}")
    lines += [f"- {item}" for item in objects] + [""]
    return lines
