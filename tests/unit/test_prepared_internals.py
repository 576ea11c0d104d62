"""store/prepared.py runs compiled statements straight on the driver with SQLAlchemy's own
bind and result processors, read from compiled statements' private attributes. If a new
SQLAlchemy moves them, this fails here, loudly, before anything else does."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    select,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from agent_control_plane.store.prepared import Prepared

_table = Table(
    "t",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("cost", Numeric(18, 9)),
)
STATEMENT = select(_table.c.id, _table.c.cost).where(
    _table.c.name == bindparam("p_name"), _table.c.cost > bindparam("p_cost", type_=Numeric())
)


@pytest.mark.parametrize(
    "dialect",
    [sqlite.dialect(), postgresql.dialect(), mysql.dialect()],  # type: ignore[no-untyped-call]
    ids=["sqlite", "postgresql", "mysql"],
)
def test_the_compiled_internals_prepared_reads_are_there(dialect: Dialect) -> None:
    compiled = STATEMENT.compile(dialect=dialect)
    assert hasattr(compiled, "positiontup")
    assert isinstance(compiled.bind_names, dict)
    assert isinstance(compiled.construct_params(_check=False), dict)
    assert isinstance(compiled._bind_processors, dict)
    columns = compiled._result_columns
    assert [column[0] for column in columns] == ["id", "cost"]
    assert all(len(column) >= 4 for column in columns)
    assert hasattr(columns[1][3], "_cached_result_processor")


def test_prepared_binds_in_the_order_the_sql_names_them() -> None:
    prepared = Prepared(STATEMENT, create_engine("sqlite://").dialect)
    values = prepared._bind({"p_name": "x", "p_cost": Decimal("1.5")})
    assert prepared.sql.count("?") == len(values) == 2
    assert prepared.keys == ["id", "cost"]
