"""Token reservation statements: insert, finish (settled, released, expired), read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Row,
    Update,
    bindparam,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Connection

from agent_control_plane.models import Reservation
from agent_control_plane.rules.tokens import IDENTITY_FIELDS
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.statuses import ReservationStatus
from agent_control_plane.store.prepared import execute, fetch
from agent_control_plane.store.rows import insert_every_column, insert_parameters, to_model


def to_reservation(row: Row[Any]) -> Reservation:
    return to_model(Reservation, row)


def _insert(connection: Connection, runtime: Runtime, table: Any, values: dict[str, Any]) -> None:
    execute(connection, runtime, insert_every_column(table), insert_parameters(table, values))


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
        .where(r.id == bindparam("f_id", type_=r.id.type), r.status == ReservationStatus.HELD)
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
