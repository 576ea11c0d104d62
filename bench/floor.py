"""The raw SQLAlchemy Core floor: one UPDATE + one INSERT per transaction, at its best.

Nothing in the yardstick may be slower than it needs to be: both statements are built
once, and the floor is the fastest of the engine setups below, measured in the same run.
SQLite's includes the durability ACP itself runs with (WAL, ``synchronous=NORMAL``), so
that no govern ever looks good against a slower journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    update,
)

from agent_control_plane.engine import create_sync_engine, database_url, governed_engine
from bench.timing import concurrent_latencies, concurrent_ops_per_second, ops_per_second

_metadata = MetaData()
_counters = Table(
    "bench_floor_counters",
    _metadata,
    # Not AUTO_INCREMENT: MySQL would store an explicit id 0 as the next value (1), and the
    # floor's UPDATE of row 0 would then match nothing.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("used", BigInteger, nullable=False),
)
_log = Table(
    "bench_floor_log",
    _metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("counter_id", Integer, nullable=False),
    Column("note", String(64), nullable=False),
)
_LOG = insert(_log)


def _charge(counter_id: int) -> Any:
    return update(_counters).where(_counters.c.id == counter_id).values(used=_counters.c.used + 1)


def _acp_setup(url: str) -> tuple[Engine, Engine]:
    """ACP's own engine: its pool options, pragmas and transaction behaviour."""
    engine = create_sync_engine(database_url(url))
    return engine, governed_engine(engine)


def _defaults(url: str) -> tuple[Engine, Engine]:
    """``create_engine`` with nothing changed."""
    engine = create_engine(database_url(url))
    return engine, engine


def _defaults_wal(url: str) -> tuple[Engine, Engine]:
    """SQLite: engine defaults, with the journal ACP runs with."""
    engine = create_engine(database_url(url))

    @event.listens_for(engine, "connect")
    def _journal(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine, engine


Setup = Callable[[str], tuple[Engine, Engine]]


def _setups(url: str) -> list[Setup]:
    setups: list[Setup] = [_acp_setup, _defaults]
    if database_url(url).get_backend_name() == "sqlite":
        setups.append(_defaults_wal)
    return setups


@contextmanager
def _counter_rows(url: str, setup: Setup, rows: int) -> Iterator[Engine]:
    engine, transactional = setup(url)
    _metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(_counters), [{"id": i, "used": 0} for i in range(rows)])
        yield transactional
    finally:
        _metadata.drop_all(engine)
        engine.dispose()


def _transaction(engine: Engine, charge: Any, row: dict[str, Any]) -> Callable[[], None]:
    def transaction() -> None:
        with engine.begin() as connection:
            connection.execute(charge)
            connection.execute(_LOG, row)

    return transaction


def floor_ops_per_second(url: str, seconds: float) -> float:
    """Transactions per second of the floor, single thread: the best engine setup's."""
    best = 0.0
    for setup in _setups(url):
        with _counter_rows(url, setup, 1) as engine:
            transaction = _transaction(engine, _charge(0), {"counter_id": 0, "note": "floor"})
            best = max(best, ops_per_second(transaction, seconds))
    return best


def concurrent_floor_ops_per_second(url: str, seconds: float, workers: int) -> float:
    """The floor with ``workers`` threads, each on its own counter row: the best setup's."""
    best = 0.0
    for setup in _setups(url):
        with _counter_rows(url, setup, workers) as engine:
            transactions = [
                _transaction(engine, _charge(i), {"counter_id": i, "note": "floor"})
                for i in range(workers)
            ]
            best = max(
                best,
                concurrent_ops_per_second(lambda i: transactions[i](), seconds, workers),  # noqa: B023
            )
    return best


def concurrent_floor_latencies(url: str, seconds: float, workers: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of one floor transaction, ``workers`` threads on their own
    rows, with ACP's engine setup: the tail the machine and the server give anything."""
    with _counter_rows(url, _acp_setup, workers) as engine:
        transactions = [
            _transaction(engine, _charge(i), {"counter_id": i, "note": "floor"})
            for i in range(workers)
        ]
        for transaction in transactions:
            transaction()
        return concurrent_latencies(lambda i: transactions[i](), seconds, workers)


def driver_horizon_ops_per_second(url: str, seconds: float) -> float | None:
    """PostgreSQL: the floor's UPDATE and INSERT as one statement, sent straight on the
    driver in autocommit: one round trip and one commit, with no Python around it. No
    decision can go faster than this; None on the other databases (one statement cannot
    both update and insert there)."""
    if database_url(url).get_backend_name() != "postgresql":
        return None
    with _counter_rows(url, _defaults, 1) as engine:
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.autocommit = True
            counters, log = _counters.name, _log.name
            sql = (
                f"WITH charged AS (UPDATE {counters} SET used = used + 1 WHERE id = 0 "
                f"RETURNING id) INSERT INTO {log} (counter_id, note) "
                "SELECT id, 'horizon' FROM charged"
            )
            return ops_per_second(lambda: driver.execute(sql), seconds)
        finally:
            raw.close()
