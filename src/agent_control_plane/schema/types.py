"""Column types that behave the same on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, Numeric
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.types import TypeDecorator, TypeEngine

# Money's rules are pure and live in rules/; schema/ builds the column type on them.
from agent_control_plane.rules.money import (
    MAX_MONEY,
    MONEY_PRECISION,
    MONEY_QUANTUM,
    MONEY_SCALE,
    to_money,
)

__all__ = [
    "MAX_MONEY",
    "MONEY_PRECISION",
    "MONEY_SCALE",
    "BigSerial",
    "JSONDocument",
    "Money",
    "UTCDateTime",
    "to_money",
]


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME text, written by isoformat: the same "YYYY-MM-DD HH:MM:SS.ffffff"
    SQLAlchemy stores, at a fraction of the cost of its %-formatting (every statement binds
    timestamps)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # SQLAlchemy copies types with their options (adapt): pass them all through.
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(" ", "microseconds")

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every dialect; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql" or dialect.name == "mariadb":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDateTime())
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"naive datetime {value!r}: pass an aware datetime (UTC)")
            value = value.astimezone(UTC)
        # Only PostgreSQL stores the zone; elsewhere a naive UTC value sorts correctly.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Exact USD: NUMERIC(27, 9), or scaled BIGINT on SQLite (which has no exact decimal)."""

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        if dialect.name == "sqlite":
            return int(amount.scaleb(MONEY_SCALE))
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE).quantize(MONEY_QUANTUM)
        return Decimal(value).quantize(MONEY_QUANTUM)


# JSONB on PostgreSQL for indexable, compact documents; JSON elsewhere.
JSONDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigSerial = BigInteger().with_variant(Integer(), "sqlite")
