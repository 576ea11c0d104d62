"""Shared shapes of ACP's reads: rows to dataclasses, and keyset pages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any, TypeVar, get_type_hints

from sqlalchemy import ColumnElement, Insert, Select, Table, and_, bindparam, insert, or_, select

T = TypeVar("T")


@cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(field.name for field in fields(cls))


@cache
def _status_fields(cls: Any) -> tuple[tuple[str, type[StrEnum]], ...]:
    """The fields of ``cls`` typed as a status set (statuses.py), with that set."""
    hints = get_type_hints(cls)
    return tuple(
        (name, hint)
        for name, hint in hints.items()
        if isinstance(hint, type) and issubclass(hint, StrEnum)
    )


def to_model(cls: type[T], row: Any) -> T:
    """Build dataclass ``cls`` from a result row (or mapping) by the dataclass's own fields;
    a field the row lacks keeps its default (fields that are not stored, like warnings). A
    status column becomes its StrEnum member (the CHECK constraint holds it to the set)."""
    mapping: Mapping[str, Any] = row if isinstance(row, Mapping) else row._mapping
    names = _field_names(cls)  # type: ignore[arg-type]  # classes are hashable
    values = {name: mapping[name] for name in names if name in mapping}
    for name, statuses in _status_fields(cls):  # type: ignore[arg-type]
        if name in values:
            values[name] = statuses(values[name])
    return cls(**values)


def keyset_page(
    table: Table,
    *,
    order: ColumnElement[Any],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    descending: bool = False,
    **equal: Any,
) -> Select[Any]:
    """Rows of ``table`` matching the non-None ``equal`` filters, ordered by (order, id),
    starting after the cursor ``after``; no OFFSET."""
    key = table.c.id
    query = select(table).where(
        *(table.c[column] == value for column, value in equal.items() if value is not None)
    )
    if after is not None:
        at, last = after
        if descending:
            query = query.where(or_(order < at, and_(order == at, key < last)))
        else:
            query = query.where(or_(order > at, and_(order == at, key > last)))
    ordering = (order.desc(), key.desc()) if descending else (order, key)
    return query.order_by(*ordering).limit(limit)


def sessions_of_tenant(sessions: Table, tenant: str) -> Select[Any]:
    """The ids of ``tenant``'s sessions, to confine a listing of session-owned rows."""
    return select(sessions.c.id).where(sessions.c.tenant == tenant)


@lru_cache(maxsize=32)
def insert_every_column(table: Any) -> Insert:
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


def insert_parameters(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Every column's parameter: a column ``values`` leaves out is NULL."""
    get = values.get
    return {parameter: get(column) for parameter, column in _parameter_names(table)}
