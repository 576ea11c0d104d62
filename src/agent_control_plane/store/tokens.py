"""Token budget statements: window upserts, conditional holds, settlement, the ledger."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection

from agent_control_plane.models import Reservation, TokenBudget
from agent_control_plane.runtime import Runtime

_BUDGET_FIELDS = tuple(field.name for field in fields(TokenBudget))
_RESERVATION_FIELDS = tuple(field.name for field in fields(Reservation))


def to_budget(row: Row[Any]) -> TokenBudget:
    mapping = row._mapping
    return TokenBudget(**{name: mapping[name] for name in _BUDGET_FIELDS})


def to_reservation(row: Row[Any]) -> Reservation:
    mapping = row._mapping
    return Reservation(**{name: mapping[name] for name in _RESERVATION_FIELDS})


def insert_budget(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.token_budgets), values)


def update_budget(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, values: dict[str, Any]
) -> bool:
    budgets = runtime.tables.token_budgets
    statement = update(budgets).where(budgets.c.id == budget_id).values(**values)
    return bool(connection.execute(statement).rowcount)


def delete_budget(connection: Connection, runtime: Runtime, budget_id: uuid.UUID) -> bool:
    budgets = runtime.tables.token_budgets
    return bool(connection.execute(delete(budgets).where(budgets.c.id == budget_id)).rowcount)


def get_budget(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID
) -> TokenBudget | None:
    budgets = runtime.tables.token_budgets
    row = connection.execute(select(budgets).where(budgets.c.id == budget_id)).one_or_none()
    return None if row is None else to_budget(row)


def list_budgets(connection: Connection, runtime: Runtime) -> list[TokenBudget]:
    budgets = runtime.tables.token_budgets
    rows = connection.execute(select(budgets).order_by(budgets.c.scope_key, budgets.c.period))
    return [to_budget(row) for row in rows]


def candidates(
    connection: Connection,
    runtime: Runtime,
    identity: dict[str, str | None],
    session_id: uuid.UUID | None,
) -> list[TokenBudget]:
    """Budgets that may apply: identity budgets whose set fields all match, and the
    session's budgets."""
    b = runtime.tables.token_budgets.c
    identity_match = and_(
        b.session_id.is_(None),
        *(
            or_(b[f"{name}_id"].is_(None), b[f"{name}_id"] == value)
            if value is not None
            else b[f"{name}_id"].is_(None)
            for name, value in identity.items()
        ),
    )
    where = (
        identity_match if session_id is None else or_(identity_match, b.session_id == session_id)
    )
    query = select(runtime.tables.token_budgets).where(where).order_by(b.id)
    return [to_budget(row) for row in connection.execute(query)]


def ensure_window(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, start: datetime, now: datetime
) -> None:
    """Create the window row if missing; any number of concurrent first writers succeed."""
    windows = runtime.tables.token_windows
    values = {
        "budget_id": budget_id,
        "window_start": start,
        "tokens_used": 0,
        "cost_used": Decimal(0),
        "requests_used": 0,
        "tokens_reserved": 0,
        "cost_reserved": Decimal(0),
        "requests_reserved": 0,
        "updated_at": now,
    }
    statement: Any
    if runtime.dialect in ("mysql", "mariadb"):
        # Not INSERT IGNORE: on a duplicate it takes a shared lock that the hold's UPDATE
        # must then upgrade, and concurrent first writers deadlock. A no-op ON DUPLICATE
        # KEY UPDATE locks the row exclusively at once, so they queue instead.
        statement = (
            mysql.insert(windows)
            .values(values)
            .on_duplicate_key_update(budget_id=windows.c.budget_id)
        )
    else:
        dialect_insert = postgresql.insert if runtime.dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(windows).values(values).on_conflict_do_nothing()
    connection.execute(statement)


def hold(
    connection: Connection,
    runtime: Runtime,
    budget: TokenBudget,
    start: datetime,
    tokens: int,
    cost: Decimal,
    now: datetime,
) -> bool:
    """Reserve on one window only if used + reserved + this stays within every limit."""
    w = runtime.tables.token_windows.c
    conditions = [w.budget_id == budget.id, w.window_start == start]
    if budget.max_tokens is not None:
        conditions.append(w.tokens_used + w.tokens_reserved + tokens <= budget.max_tokens)
    if budget.max_cost_usd is not None:
        conditions.append(w.cost_used + w.cost_reserved + cost <= budget.max_cost_usd)
    if budget.max_requests is not None:
        conditions.append(w.requests_used + w.requests_reserved + 1 <= budget.max_requests)
    statement = (
        update(runtime.tables.token_windows)
        .where(*conditions)
        .values(
            tokens_reserved=w.tokens_reserved + tokens,
            cost_reserved=w.cost_reserved + cost,
            requests_reserved=w.requests_reserved + 1,
            updated_at=now,
        )
    )
    return bool(connection.execute(statement).rowcount)


def move(
    connection: Connection,
    runtime: Runtime,
    budget_id: uuid.UUID,
    start: datetime,
    *,
    release_tokens: int,
    release_cost: Decimal,
    release_requests: int,
    use_tokens: int,
    use_cost: Decimal,
    use_requests: int,
    now: datetime,
) -> None:
    """Drop a hold and/or add usage on one window, in one statement."""
    w = runtime.tables.token_windows.c
    connection.execute(
        update(runtime.tables.token_windows)
        .where(w.budget_id == budget_id, w.window_start == start)
        .values(
            tokens_reserved=w.tokens_reserved - release_tokens,
            cost_reserved=w.cost_reserved - release_cost,
            requests_reserved=w.requests_reserved - release_requests,
            tokens_used=w.tokens_used + use_tokens,
            cost_used=w.cost_used + use_cost,
            requests_used=w.requests_used + use_requests,
            updated_at=now,
        )
    )


def window(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, start: datetime
) -> Row[Any] | None:
    windows = runtime.tables.token_windows
    return connection.execute(
        select(windows).where(windows.c.budget_id == budget_id, windows.c.window_start == start)
    ).one_or_none()


def insert_reservation(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.token_reservations), values)


def finish_reservation(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID, status: str, now: datetime
) -> Reservation | None:
    """Move a held reservation to ``status``; None if it was no longer held."""
    r = runtime.tables.token_reservations.c
    changed = connection.execute(
        update(runtime.tables.token_reservations)
        .where(r.id == reservation_id, r.status == "held")
        .values(status=status, settled_at=now)
    ).rowcount
    if not changed:
        return None
    return get_reservation(connection, runtime, reservation_id)


def get_reservation(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID
) -> Reservation | None:
    reservations = runtime.tables.token_reservations
    row = connection.execute(
        select(reservations).where(reservations.c.id == reservation_id)
    ).one_or_none()
    return None if row is None else to_reservation(row)


def expired_held(connection: Connection, runtime: Runtime, now: datetime) -> list[uuid.UUID]:
    """Held reservations past their expiry that no other sweep has locked."""
    r = runtime.tables.token_reservations.c
    query = (
        select(r.id)
        .where(r.status == "held", r.expires_at <= now)
        .order_by(r.id)
        .with_for_update(skip_locked=True)
    )
    return list(connection.execute(query).scalars())


def insert_ledger(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> int:
    result = connection.execute(insert(runtime.tables.token_ledger), values)
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def ledger_for(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID
) -> Row[Any] | None:
    ledger = runtime.tables.token_ledger
    return connection.execute(
        select(ledger).where(ledger.c.reservation_id == reservation_id)
    ).one_or_none()


def _day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a stored timestamp, as text YYYY-MM-DD on every dialect."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    if dialect in ("mysql", "mariadb"):
        return func.date_format(column, "%Y-%m-%d")
    return func.substr(column, 1, 10)  # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC


def usage_report(
    connection: Connection,
    runtime: Runtime,
    groups: list[str],
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    ledger = runtime.tables.token_ledger
    c = ledger.c
    keys = {
        "org": c.org_id,
        "team": c.team_id,
        "user": c.user_id,
        "agent": c.agent_id,
        "model": c.model,
        "day": _day(c.created_at, runtime.dialect),
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
        {
            **{g: row._mapping[g] for g in groups},
            "requests": int(row.requests),
            "input_tokens": int(row.input_tokens),
            "output_tokens": int(row.output_tokens),
            "total_tokens": int(row.total_tokens),
            "cost_usd": Decimal(row.cost_usd),
        }
        for row in connection.execute(query)
    ]
