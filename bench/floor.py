"""The raw SQLAlchemy Core floor: one UPDATE + one INSERT per transaction."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, update

from agent_control_plane.engine import create_sync_engine, database_url, governed_engine
from bench.timing import concurrent_ops_per_second, ops_per_second

_metadata = MetaData()
_counters = Table(
    "bench_floor_counters",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("used", BigInteger, nullable=False),
)
_log = Table(
    "bench_floor_log",
    _metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("counter_id", Integer, nullable=False),
    Column("note", String(64), nullable=False),
)


def floor_ops_per_second(url: str, seconds: float) -> float:
    """Transactions per second of the floor, single thread, same engine setup as ACP."""
    engine = create_sync_engine(database_url(url))
    governed = governed_engine(engine)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(_counters), {"id": 1, "used": 0})
    charge = update(_counters).where(_counters.c.id == 1).values(used=_counters.c.used + 1)

    def transaction() -> None:
        with governed.begin() as connection:
            connection.execute(charge)
            connection.execute(insert(_log), {"counter_id": 1, "note": "floor"})

    result = ops_per_second(transaction, seconds)
    _metadata.drop_all(engine)
    engine.dispose()
    return result


def concurrent_floor_ops_per_second(url: str, seconds: float, workers: int) -> float:
    """The floor with ``workers`` threads, each on its own counter row."""
    engine = create_sync_engine(database_url(url))
    governed = governed_engine(engine)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(_counters), [{"id": i, "used": 0} for i in range(workers)])

    def transaction(index: int) -> None:
        charge = update(_counters).where(_counters.c.id == index).values(used=_counters.c.used + 1)
        with governed.begin() as connection:
            connection.execute(charge)
            connection.execute(insert(_log), {"counter_id": index, "note": "floor"})

    result = concurrent_ops_per_second(transaction, seconds, workers)
    _metadata.drop_all(engine)
    engine.dispose()
    return result
