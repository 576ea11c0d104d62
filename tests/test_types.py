"""Column types: exact money and aware UTC time, on every dialect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, select

from agent_control_plane.schema.types import Money, UTCDateTime, to_money
from tests.databases import TestDatabase


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Decimal("0.004"), Decimal("0.004000000")), (3, Decimal("3")), ("1e-9", Decimal("1e-9"))],
)
def test_to_money_accepts_exact_amounts(value: Decimal | int | str, expected: Decimal) -> None:
    assert to_money(value) == expected


@pytest.mark.parametrize(
    "value", [0.1, "1e-10", "abc", "NaN", "Infinity", Decimal(10) ** 10, "1e40", "-1e99", True]
)
def test_to_money_refuses_inexact_or_absurd_amounts(value: object) -> None:
    with pytest.raises(ValueError, match=r"money|decimal places|amount"):
        to_money(value)  # type: ignore[arg-type]


def _scratch_table() -> Table:
    return Table(
        "scratch_types",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("amount", Money()),
        Column("at", UTCDateTime()),
    )


def test_money_sums_exactly_and_time_comes_back_aware_utc(database: TestDatabase) -> None:
    table = _scratch_table()
    engine = create_engine(database.url)
    table.metadata.create_all(engine)
    local = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5)))
    with engine.begin() as connection:
        connection.execute(
            table.insert(), [{"amount": Decimal("0.004"), "at": local} for _ in range(100)]
        )
        connection.execute(table.insert(), {"amount": Decimal("999999999.999999999")})
    with engine.connect() as connection:
        total = connection.execute(select(func.sum(table.c.amount)).where(table.c.id <= 100))
        assert total.scalar_one() == Decimal("0.400000000")
        big = connection.execute(select(table.c.amount).where(table.c.id == 101)).scalar_one()
        assert big == Decimal("999999999.999999999")
        at = connection.execute(select(table.c.at).where(table.c.id == 1)).scalar_one()
    assert at.tzinfo is not None
    assert at.utcoffset() == timedelta(0)
    assert at == local
    assert at == datetime(2026, 1, 1, 22, 4, 5, 678901, tzinfo=UTC)
    engine.dispose()


def test_naive_datetimes_are_refused_before_writing(database: TestDatabase) -> None:
    table = _scratch_table()
    engine = create_engine(database.url)
    table.metadata.create_all(engine)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(table.insert(), {"at": datetime(2026, 1, 1)})
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 26, 3, 49, 55, 327477),
        datetime(2026, 1, 2, 3, 4, 5),  # no microseconds: still six digits
        datetime(999, 12, 31, 23, 59, 59, 1),  # a year below 1000: still four digits
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ],
)
def test_sqlite_timestamps_are_stored_in_sqlalchemys_own_text_format(moment: datetime) -> None:
    """Stored text must sort and compare like the text SQLAlchemy writes, whatever wrote it."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)  # type: ignore[no-untyped-call]
    assert ours is not None
    assert theirs is not None
    assert ours(moment.replace(tzinfo=UTC)) == theirs(moment)
    assert ours(None) is None
