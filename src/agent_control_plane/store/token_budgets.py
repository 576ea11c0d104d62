"""Token budget statements: the budgets, their epoch, windows and conditional holds."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from agent_control_plane.models import TokenBudget
from agent_control_plane.rules.token_budgets import WindowTotals
from agent_control_plane.rules.tokens import IDENTITY_FIELDS
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.store.dialect import upsert
from agent_control_plane.store.prepared import execute, fetch
from agent_control_plane.store.rows import to_model


def to_budget(row: Row[Any]) -> TokenBudget:
    return to_model(TokenBudget, row)


def insert_budget(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    connection.execute(insert(runtime.tables.token_budgets), values)
    _count_change(connection, runtime)


def update_budget(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, values: dict[str, Any]
) -> bool:
    budgets = runtime.tables.token_budgets
    statement = update(budgets).where(budgets.c.id == budget_id).values(**values)
    changed = bool(connection.execute(statement).rowcount)
    if changed:
        _count_change(connection, runtime)
    return changed


def delete_budget(connection: Connection, runtime: Runtime, budget_id: uuid.UUID) -> bool:
    budgets = runtime.tables.token_budgets
    deleted = bool(connection.execute(delete(budgets).where(budgets.c.id == budget_id)).rowcount)
    if deleted:
        _count_change(connection, runtime)
    return deleted


_EPOCH_ROW = 1


def _count_change(connection: Connection, runtime: Runtime) -> None:
    """Count a change to the budgets, in the transaction that makes it, so that every
    process's remembered budgets stop matching once it commits."""
    epoch = runtime.tables.token_budget_epoch
    connection.execute(
        upsert(
            runtime,
            epoch,
            {"id": _EPOCH_ROW, "epoch": 1},
            ("id",),
            {"epoch": epoch.c.epoch + 1},
        )
    )


@lru_cache(maxsize=32)
def _epoch_now(tables: AcpTables) -> Any:
    epoch = tables.token_budget_epoch
    return select(epoch.c.epoch).where(epoch.c.id == _EPOCH_ROW).scalar_subquery()


@lru_cache(maxsize=32)
def _read_epoch(tables: AcpTables) -> Select[Any]:
    return select(_epoch_now(tables).label("epoch"))


def budget_epoch(connection: Connection, runtime: Runtime) -> int | None:
    """How many times the budgets have changed (None in a database that never counted)."""
    rows = fetch(connection, runtime, _read_epoch(runtime.tables), {})
    epoch = rows[0]["epoch"] if rows else None
    return None if epoch is None else int(epoch)


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


@lru_cache(maxsize=64)
def _candidates(tables: AcpTables, present: tuple[str, ...], with_session: bool) -> Select[Any]:
    b = tables.token_budgets.c
    identity_match = and_(
        b.session_id.is_(None),
        *(
            or_(b[f"{name}_id"].is_(None), b[f"{name}_id"] == bindparam(f"t_{name}"))
            if name in present
            else b[f"{name}_id"].is_(None)
            for name in IDENTITY_FIELDS
        ),
    )
    where = identity_match
    if with_session:
        where = or_(identity_match, b.session_id == bindparam("t_session", type_=b.session_id.type))
    return select(tables.token_budgets).where(where).order_by(b.id)


def candidates(
    connection: Connection,
    runtime: Runtime,
    identity: dict[str, str | None],
    session_id: uuid.UUID | None,
) -> list[TokenBudget]:
    """Budgets that may apply: identity budgets whose set fields all match, and the
    session's budgets."""
    present = tuple(name for name in IDENTITY_FIELDS if identity.get(name) is not None)
    statement = _candidates(runtime.tables, present, session_id is not None)
    parameters: dict[str, Any] = {f"t_{name}": identity[name] for name in present}
    parameters["t_session"] = session_id
    return [to_model(TokenBudget, row) for row in fetch(connection, runtime, statement, parameters)]


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
    connection.execute(upsert(runtime, windows, values, ("budget_id", "window_start")))


@lru_cache(maxsize=64)
def _hold(tables: AcpTables, limits: tuple[bool, bool, bool], at_epoch: bool = False) -> Update:
    w = tables.token_windows.c
    tokens = bindparam("h_tokens", type_=w.tokens_reserved.type)
    cost = bindparam("h_cost", type_=w.cost_reserved.type)
    conditions = [
        w.budget_id == bindparam("h_budget", type_=w.budget_id.type),
        w.window_start == bindparam("h_start", type_=w.window_start.type),
    ]
    if limits[0]:
        conditions.append(
            w.tokens_used + w.tokens_reserved + tokens
            <= bindparam("h_max_tokens", type_=w.tokens_used.type)
        )
    if limits[1]:
        conditions.append(
            w.cost_used + w.cost_reserved + cost <= bindparam("h_max_cost", type_=w.cost_used.type)
        )
    if limits[2]:
        conditions.append(
            w.requests_used + w.requests_reserved + 1
            <= bindparam("h_max_requests", type_=w.requests_used.type)
        )
    if at_epoch:
        conditions.append(_epoch_now(tables) == bindparam("h_epoch", type_=BigInteger()))
    return (
        update(tables.token_windows)
        .where(*conditions)
        .values(
            tokens_reserved=w.tokens_reserved + tokens,
            cost_reserved=w.cost_reserved + cost,
            requests_reserved=w.requests_reserved + 1,
            updated_at=bindparam("h_now", type_=w.updated_at.type),
        )
    )


def hold(
    connection: Connection,
    runtime: Runtime,
    budget: TokenBudget,
    start: datetime,
    tokens: int,
    cost: Decimal,
    now: datetime,
    *,
    epoch: int | None = None,
) -> bool:
    """Reserve on one window only if used + reserved + this stays within every limit, and,
    given an ``epoch``, only if the budgets have not changed since it was read."""
    limits = (
        budget.max_tokens is not None,
        budget.max_cost_usd is not None,
        budget.max_requests is not None,
    )
    parameters = {
        "h_budget": budget.id,
        "h_start": start,
        "h_tokens": tokens,
        "h_cost": cost,
        "h_now": now,
        "h_max_tokens": budget.max_tokens,
        "h_max_cost": budget.max_cost_usd,
        "h_max_requests": budget.max_requests,
        "h_epoch": epoch,
    }
    statement = _hold(runtime.tables, limits, epoch is not None)
    return _changed(connection, runtime, statement, parameters)


def _changed(
    connection: Connection, runtime: Runtime, statement: Update, parameters: dict[str, Any]
) -> bool:
    return execute(connection, runtime, statement, parameters) > 0


def add_hold(
    connection: Connection,
    runtime: Runtime,
    budget_id: uuid.UUID,
    start: datetime,
    tokens: int,
    cost: Decimal,
    now: datetime,
) -> None:
    """Add a hold with no condition: the caller checked the limits under the budget lock."""
    parameters = {
        "h_budget": budget_id,
        "h_start": start,
        "h_tokens": tokens,
        "h_cost": cost,
        "h_now": now,
    }
    _changed(connection, runtime, _hold(runtime.tables, (False, False, False)), parameters)


@lru_cache(maxsize=32)
def _move(tables: AcpTables) -> Update:
    w = tables.token_windows.c

    def amount(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    return (
        update(tables.token_windows)
        .where(
            w.budget_id == amount("m_budget", w.budget_id),
            w.window_start == amount("m_start", w.window_start),
        )
        .values(
            tokens_reserved=w.tokens_reserved - amount("m_release_tokens", w.tokens_reserved),
            cost_reserved=w.cost_reserved - amount("m_release_cost", w.cost_reserved),
            requests_reserved=w.requests_reserved
            - amount("m_release_requests", w.requests_reserved),
            tokens_used=w.tokens_used + amount("m_use_tokens", w.tokens_used),
            cost_used=w.cost_used + amount("m_use_cost", w.cost_used),
            requests_used=w.requests_used + amount("m_use_requests", w.requests_used),
            updated_at=amount("m_now", w.updated_at),
        )
    )


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
    execute(
        connection,
        runtime,
        _move(runtime.tables),
        {
            "m_budget": budget_id,
            "m_start": start,
            "m_release_tokens": release_tokens,
            "m_release_cost": release_cost,
            "m_release_requests": release_requests,
            "m_use_tokens": use_tokens,
            "m_use_cost": use_cost,
            "m_use_requests": use_requests,
            "m_now": now,
        },
    )


def _totals(row: Any) -> WindowTotals:
    return WindowTotals(
        tokens_used=int(row.tokens_used),
        tokens_reserved=int(row.tokens_reserved),
        cost_used=row.cost_used,
        cost_reserved=row.cost_reserved,
        requests_used=int(row.requests_used),
        requests_reserved=int(row.requests_reserved),
    )


def window(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, start: datetime
) -> WindowTotals | None:
    """The window's usage and holds, or None if the window was never written."""
    windows = runtime.tables.token_windows
    row = connection.execute(
        select(windows).where(windows.c.budget_id == budget_id, windows.c.window_start == start)
    ).one_or_none()
    return None if row is None else _totals(row)


def lock_budget(connection: Connection, runtime: Runtime, budget_id: uuid.UUID) -> None:
    """Serialise every rolling-window hold of one budget (SQLite serialises writers anyway)."""
    budgets = runtime.tables.token_budgets
    connection.execute(select(budgets.c.id).where(budgets.c.id == budget_id).with_for_update())


def rolling_totals(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, since: datetime
) -> WindowTotals:
    """Used and reserved summed over the windows starting at or after ``since``."""
    w = runtime.tables.token_windows.c
    row = connection.execute(
        select(
            func.coalesce(func.sum(w.tokens_used), 0).label("tokens_used"),
            func.coalesce(func.sum(w.tokens_reserved), 0).label("tokens_reserved"),
            func.coalesce(func.sum(w.cost_used), 0).label("cost_used"),
            func.coalesce(func.sum(w.cost_reserved), 0).label("cost_reserved"),
            func.coalesce(func.sum(w.requests_used), 0).label("requests_used"),
            func.coalesce(func.sum(w.requests_reserved), 0).label("requests_reserved"),
        ).where(w.budget_id == budget_id, w.window_start >= since)
    ).one()
    return _totals(row)
