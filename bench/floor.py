"""The raw SQLAlchemy Core floor: one UPDATE + one INSERT per transaction."""

from __future__ import annotations

import threading
import time

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, update

from agent_control_plane.engine import create_sync_engine, database_url, governed_engine

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
    record = insert(_log)
    count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        with governed.begin() as connection:
            connection.execute(charge)
            connection.execute(record, {"counter_id": 1, "note": "floor"})
        count += 1
    elapsed = time.perf_counter() - started
    _metadata.drop_all(engine)
    engine.dispose()
    return count / elapsed


def concurrent_floor_ops_per_second(url: str, seconds: float, workers: int) -> float:
    """The floor with ``workers`` threads, each on its own counter row."""
    engine = create_sync_engine(database_url(url))
    governed = governed_engine(engine)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(_counters), [{"id": i, "used": 0} for i in range(workers)])
    counts = [0] * workers
    stop = threading.Event()

    def run(index: int) -> None:
        charge = update(_counters).where(_counters.c.id == index).values(used=_counters.c.used + 1)
        while not stop.is_set():
            with governed.begin() as connection:
                connection.execute(charge)
                connection.execute(insert(_log), {"counter_id": index, "note": "floor"})
            counts[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    _metadata.drop_all(engine)
    engine.dispose()
    return sum(counts) / elapsed
