"""Token budget statements: window upserts, conditional holds, settlement, the ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from agent_control_plane.models import Reservation, TokenBudget, TokenUsageRow
from agent_control_plane.rules.tokens import IDENTITY_FIELDS
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.store.dialect import upsert, utc_day
from agent_control_plane.store.prepared import execute, fetch, insert_id
from agent_control_plane.store.rows import to_model


def to_budget(row: Row[Any]) -> TokenBudget:
    return to_model(TokenBudget, row)


def to_reservation(row: Row[Any]) -> Reservation:
    return to_model(Reservation, row)


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


def window(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, start: datetime
) -> Row[Any] | None:
    windows = runtime.tables.token_windows
    return connection.execute(
        select(windows).where(windows.c.budget_id == budget_id, windows.c.window_start == start)
    ).one_or_none()


@lru_cache(maxsize=32)
def _insert_all(table: Any) -> Any:
    """An INSERT of every column from same-named bind parameters, built once per table."""
    return insert(table).values(
        {
            column.name: bindparam(f"v_{column.name}", type_=column.type)
            for column in table.c
            if not (column.primary_key and column.autoincrement is True)
        }
    )


@lru_cache(maxsize=32)
def _parameter_names(table: Any) -> tuple[tuple[str, str], ...]:
    return tuple((f"v_{column.name}", column.name) for column in table.c)


def _insert_parameters(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Every column's parameter: a column ``values`` leaves out is NULL."""
    get = values.get
    return {parameter: get(column) for parameter, column in _parameter_names(table)}


def _insert(connection: Connection, runtime: Runtime, table: Any, values: dict[str, Any]) -> None:
    execute(connection, runtime, _insert_all(table), _insert_parameters(table, values))


def insert_reservation(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> None:
    _insert(connection, runtime, runtime.tables.token_reservations, values)


@dataclass(frozen=True, slots=True)
class Finished:
    """What a finished reservation held, and who it was for: all that settling or
    releasing it needs (its other columns are not read back)."""

    id: uuid.UUID
    model: str
    holds: list[list[str]]
    reserved_tokens: int
    reserved_cost: Decimal
    ids: dict[str, Any]


_FINISHED_COLUMNS = (
    "id",
    "model",
    "holds",
    "reserved_tokens",
    "reserved_cost",
    *(f"{name}_id" for name in IDENTITY_FIELDS),
    "session_id",
)


def finish_reservation(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID, status: str, now: datetime
) -> Finished | None:
    """Move a held reservation to ``status``; return what it held, or None if it was no
    longer held."""
    reservations = runtime.tables.token_reservations
    parameters = {"f_id": reservation_id, "f_status": status, "f_now": now}
    mapping: Any
    if runtime.capabilities.update_returning:
        rows = fetch(connection, runtime, _finish(runtime.tables, True), parameters)
        if not rows:
            return None
        mapping = rows[0]
    else:
        if not execute(connection, runtime, _finish(runtime.tables, False), parameters):
            return None
        columns = [reservations.c[name] for name in _FINISHED_COLUMNS]
        mapping = (
            connection.execute(select(*columns).where(reservations.c.id == reservation_id))
            .one()
            ._mapping
        )
    return Finished(
        id=mapping["id"],
        model=mapping["model"],
        holds=mapping["holds"],
        reserved_tokens=mapping["reserved_tokens"],
        reserved_cost=mapping["reserved_cost"],
        ids={name: mapping[name] for name in _FINISHED_COLUMNS[5:]},
    )


@lru_cache(maxsize=32)
def _finish(tables: AcpTables, returning: bool) -> Update:
    reservations = tables.token_reservations
    r = reservations.c
    statement = (
        update(reservations)
        .where(r.id == bindparam("f_id", type_=r.id.type), r.status == "held")
        .values(
            status=bindparam("f_status"),
            settled_at=bindparam("f_now", type_=r.settled_at.type),
        )
    )
    return statement.returning(*(r[name] for name in _FINISHED_COLUMNS)) if returning else statement


def get_reservation(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID
) -> Reservation | None:
    reservations = runtime.tables.token_reservations
    row = connection.execute(
        select(reservations).where(reservations.c.id == reservation_id)
    ).one_or_none()
    return None if row is None else to_reservation(row)


def expired_held(
    connection: Connection, runtime: Runtime, now: datetime, limit: int
) -> list[uuid.UUID]:
    """Up to ``limit`` held reservations past their expiry that no other sweep has locked."""
    r = runtime.tables.token_reservations.c
    query = (
        select(r.id)
        # A literal, as in the partial index's condition, for every planner to match it.
        .where(r.status == literal_column("'held'"), r.expires_at <= now)
        .order_by(r.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(connection.execute(query).scalars())


@lru_cache(maxsize=32)
def _insert_ledger_returning_id(tables: AcpTables) -> Any:
    # Built once: the direct executor caches compiled statements by identity.
    return _insert_all(tables.token_ledger).returning(tables.token_ledger.c.id)


def insert_ledger(connection: Connection, runtime: Runtime, values: dict[str, Any]) -> int:
    """Insert a ledger row; return its id (RETURNING on PostgreSQL, the driver's lastrowid
    on SQLite and MySQL/MariaDB, as for events)."""
    ledger = runtime.tables.token_ledger
    parameters = _insert_parameters(ledger, values)
    if runtime.capabilities.insert_returning_id:
        statement = _insert_ledger_returning_id(runtime.tables)
        return int(fetch(connection, runtime, statement, parameters)[0]["id"])
    return insert_id(connection, runtime, _insert_all(ledger), parameters)


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


def lock_budget(connection: Connection, runtime: Runtime, budget_id: uuid.UUID) -> None:
    """Serialise every rolling-window hold of one budget (SQLite serialises writers anyway)."""
    budgets = runtime.tables.token_budgets
    connection.execute(select(budgets.c.id).where(budgets.c.id == budget_id).with_for_update())


def rolling_totals(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID, since: datetime
) -> Any:
    """Used and reserved summed over the windows starting at or after ``since``."""
    w = runtime.tables.token_windows.c
    return connection.execute(
        select(
            func.coalesce(func.sum(w.tokens_used), 0).label("tokens_used"),
            func.coalesce(func.sum(w.tokens_reserved), 0).label("tokens_reserved"),
            func.coalesce(func.sum(w.cost_used), 0).label("cost_used"),
            func.coalesce(func.sum(w.cost_reserved), 0).label("cost_reserved"),
            func.coalesce(func.sum(w.requests_used), 0).label("requests_used"),
            func.coalesce(func.sum(w.requests_reserved), 0).label("requests_reserved"),
        ).where(w.budget_id == budget_id, w.window_start >= since)
    ).one()
