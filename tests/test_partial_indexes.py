"""Partial indexes (SQLite, PostgreSQL): each holds only the rows its queries look for, and
those queries' plans use it. MySQL/MariaDB has none and indexes every row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from agent_control_plane import ControlPlane
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT

PARTIAL = {
    "events": ("kind_id", "decision"),
    "token_reservations": ("status_expires_at", "held"),
}


def _statements_of(cp: ControlPlane, call: Callable[[], object], table: str) -> list[Any]:
    """The SELECTs ``call`` sends that read ``table``, with their parameters."""
    seen: list[Any] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and table in statement:
            seen.append((statement, parameters))

    event.listen(cp.engine, "before_cursor_execute", remember)
    try:
        call()
    finally:
        event.remove(cp.engine, "before_cursor_execute", remember)
    assert seen
    return seen


def _plan(connection: Connection, dialect: str, statement: str, parameters: Any) -> str:
    if dialect == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(row[-1]) for row in rows)
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    return "\n".join(str(row[0]) for row in rows)


def _index_definitions(connection: Connection, cp: ControlPlane, table: str) -> dict[str, str]:
    name = cp.layout.table_name(table)
    if connection.dialect.name == "sqlite":
        rows = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
            {"t": name},
        )
    elif connection.dialect.name == "postgresql":
        rows = connection.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": name}
        )
    else:
        rows = connection.execute(
            text(
                "SELECT index_name, group_concat(column_name) FROM information_schema.statistics"
                " WHERE table_schema = database() AND table_name = :t GROUP BY index_name"
            ),
            {"t": name},
        )
    return {str(index): str(definition) for index, definition in rows}


def test_the_indexes_hold_only_what_is_looked_for(control_plane: ControlPlane) -> None:
    cp = control_plane
    with cp.engine.connect() as connection:
        events = _index_definitions(connection, cp, "events")
        reservations = _index_definitions(connection, cp, "token_reservations")
        ledger = _index_definitions(connection, cp, "token_ledger")
    prefix = cp.layout.table_name
    kind = events[f"ix_{prefix('events')}_kind_id"]
    held = reservations[f"ix_{prefix('token_reservations')}_status_expires_at"]
    by_session = ledger[f"ix_{prefix('token_ledger')}_session_id"]
    by_reservation = ledger[f"ix_{prefix('token_ledger')}_reservation_id"]
    if cp.engine.dialect.name == "mysql":
        assert "WHERE" not in kind  # no partial indexes: every row, as before
        return
    with_session = reservations[f"ix_{prefix('token_reservations')}_session_id"]
    for definition, condition in (
        (kind, "<> 'decision'"),
        (held, "= 'held'"),
        (by_session, "is not null"),
        (by_reservation, "is not null"),
        (with_session, "is not null"),
    ):
        assert " where " in definition.lower()
        assert condition in definition.lower()


def test_the_feed_and_the_sweep_use_them(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    if database.dialect == "mysql":
        return  # nothing partial to use
    session = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost="10", max_actions=10)
    decision = cp.govern(session.id, "work")
    cp.record_outcome(decision, "succeeded")
    feed = _statements_of(cp, lambda: cp.event_feed(kind="outcome"), "events")
    cp.set_prices({"m": {"input": "1", "output": "1"}})
    sweep = _statements_of(cp, cp.release_expired_holds, "token_reservations")
    with cp.engine.begin() as connection:
        assert f"ix_{cp.layout.table_name('events')}_kind_id" in _plan(
            connection, database.dialect, *feed[-1]
        )
    with cp.engine.begin() as connection:
        assert f"ix_{cp.layout.table_name('token_reservations')}_status_expires_at" in _plan(
            connection, database.dialect, *sweep[-1]
        )
    # What the partial indexes leave out is still found.
    assert [e.kind for e in cp.event_feed(kind="decision").items] == ["decision"]
    assert [e.kind for e in cp.event_feed(kind="outcome").items] == ["outcome"]
    hold = cp.reserve_tokens(Identity(org="o"), "m", input_tokens=1, max_output_tokens=1)
    record = cp.settle(hold, TokenUsage(input_tokens=1, output_tokens=1))
    assert record.reservation_id == hold.id
    assert cp.settle(hold, TokenUsage(input_tokens=1, output_tokens=1)) == record
