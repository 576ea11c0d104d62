"""Token usage statements: the ledger and the usage report."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Row,
    func,
    select,
)
from sqlalchemy.engine import Connection

from agent_control_plane.models import TokenUsageRow
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.store.dialect import utc_day
from agent_control_plane.store.prepared import fetch, insert_id
from agent_control_plane.store.rows import insert_every_column, insert_parameters


@lru_cache(maxsize=32)
def _insert_ledger_returning_id(tables: AcpTables) -> Any:
    # Built once: the direct executor caches compiled statements by identity.
    return insert_every_column(tables.token_ledger).returning(tables.token_ledger.c.id)


def insert_ledger(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> int:
    """Insert a ledger row; return its id (RETURNING on PostgreSQL, the driver's lastrowid
    on SQLite and MySQL/MariaDB, as for events)."""
    ledger = runtime.tables.token_ledger
    parameters = insert_parameters(ledger, values)
    if runtime.capabilities.insert_returning_id:
        statement = _insert_ledger_returning_id(runtime.tables)
        return int(fetch(connection, runtime, statement, parameters)[0]["id"])
    return insert_id(connection, runtime, insert_every_column(ledger), parameters)


def ledger_for(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID
) -> Row[Any] | None:
    ledger = runtime.tables.token_ledger
    return connection.execute(
        select(ledger).where(ledger.c.reservation_id == reservation_id)
    ).one_or_none()


def usage_report(
    connection: Connection,
    runtime: Runtime,
    groups: list[str],
    since: datetime | None,
    until: datetime | None,
) -> list[TokenUsageRow]:
    ledger = runtime.tables.token_ledger
    c = ledger.c
    keys = {
        "org": c.org_id,
        "team": c.team_id,
        "user": c.user_id,
        "agent": c.agent_id,
        "model": c.model,
        "day": utc_day(c.created_at, runtime.dialect),
    }
    columns = [keys[g].label(g) for g in groups]
    query = select(
        *columns,
        func.count().label("requests"),
        func.sum(c.input_tokens).label("input_tokens"),
        func.sum(c.output_tokens).label("output_tokens"),
        func.sum(c.total_tokens).label("total_tokens"),
        func.sum(c.cost_usd).label("cost_usd"),
    )
    if since is not None:
        query = query.where(c.created_at >= since)
    if until is not None:
        query = query.where(c.created_at < until)
    query = query.group_by(*columns).order_by(*columns)
    return [
        TokenUsageRow(
            groups={g: row._mapping[g] for g in groups},
            requests=int(row.requests),
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            total_tokens=int(row.total_tokens),
            cost_usd=Decimal(row.cost_usd),
        )
        for row in connection.execute(query)
    ]
