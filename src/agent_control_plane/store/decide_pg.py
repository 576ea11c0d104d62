"""PostgreSQL: a warm allowed decision in one statement, in one round trip.

The general path is a transaction of two statements (charge the session, then write the
event and the idempotency record), and with BEGIN and COMMIT that is four round trips.
Where this process wrote the session's last event, everything the decision writes is
known before it is sent: the event's seq and hash, the counters it records and the
budget left after it (from the limits last read). So one statement charges the session
only if all of that is still current, and writes the event and the record only from the
row it charged: a data-modifying CTE is atomic, and sent in autocommit it needs no BEGIN
and no COMMIT. If anything changed (another writer, a new limit, a refusal) it writes
nothing, and the caller takes the general path, which finds out what changed.

Autocommit is switched on the driver connection itself: psycopg checks that no
transaction is open and sets a flag, with nothing sent to the server.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, cast, func, insert, select
from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.schema.types import Money
from agent_control_plane.store.events import EVENT_COLUMNS, event_parameters
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.prepared import fetch
from agent_control_plane.store.sessions import Placed, charge_statement


@lru_cache(maxsize=32)
def _statement(tables: AcpTables, with_claim: bool) -> Select[Any]:
    s = tables.sessions.c
    charge = charge_statement(tables, returning=False, moves_head=True)
    charged = (
        charge.where(
            s.max_cost == bindparam("p_max_cost", type_=Money()),
            s.max_actions == bindparam("p_max_actions", type_=s.max_actions.type),
        )
        .returning(s.id)
        .cte("acp_charged")
    )
    events = tables.events
    event = insert(events).from_select(
        list(EVENT_COLUMNS),
        select(
            *(
                cast(bindparam(f"e_{name}", type_=events.c[name].type), events.c[name].type)
                for name in EVENT_COLUMNS
            )
        ).select_from(charged),
    )
    statement = select(func.count().label("charged")).select_from(charged)
    statement = statement.add_cte(event.cte("acp_event"))
    if with_claim:
        keys = tables.idempotency_keys
        columns = {
            "scope": "i_scope",
            "key": "i_key",
            "request_digest": "i_digest",
            "result": "i_result",
            "created_at": "i_now",
        }
        record = insert(keys).from_select(
            list(columns),
            select(
                *(
                    cast(bindparam(param, type_=keys.c[name].type), keys.c[name].type)
                    for name, param in columns.items()
                )
            ).select_from(charged),
        )
        statement = statement.add_cte(record.cte("acp_record"))
    return statement


def decide_in_one_statement(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    cost: Decimal,
    now: datetime,
    head: Placed,
    limits: tuple[Decimal, int],
    event: dict[str, Any],
    claim: Claim | None,
    claim_result: dict[str, Any],
) -> bool:
    """Charge, write ``event`` and the claim's record, all or nothing; True if written.

    Must run outside any transaction of ``connection``. A failure while the statement
    runs leaves its outcome unknown to the caller: it committed or it did not."""
    parameters: dict[str, Any] = {
        "p_session": session_id,
        "p_cost": cost,
        "p_now": now,
        "p_seq": head.seq,
        "p_prev": head.prev_hash,
        "p_head": head.hash,
        "p_cost_before": head.counters[0],
        "p_actions_before": head.counters[1],
        "p_max_cost": limits[0],
        "p_max_actions": limits[1],
        **event_parameters(event),
    }
    if claim is not None:
        parameters.update(claim.parameters(claim_result, now))
    # The DB-API connection (SQLAlchemy's adapter of psycopg's async one, under
    # AsyncControlPlane) switches autocommit; psycopg's own says if it broke.
    adapted: Any = connection.connection.dbapi_connection
    driver: Any = connection.connection.driver_connection
    was_autocommit = bool(adapted.autocommit)  # a host's engine may keep it on
    adapted.autocommit = True
    try:
        rows = fetch(connection, runtime, _statement(runtime.tables, claim is not None), parameters)
    finally:
        if connection.in_transaction() and not driver.broken:
            # Sent through SQLAlchemy (a host listens to statements), which began a
            # transaction of its own: the statement committed itself, end that one.
            connection.rollback()
        if not driver.broken:  # a lost connection was invalidated: it is never used again
            adapted.autocommit = was_autocommit
    written = bool(rows[0]["charged"])
    if written and claim is not None:
        claim.recorded = True
    return written


def can_decide_in_one_statement(connection: Connection) -> bool:
    """Whether no transaction is open on ``connection``, nor on its driver connection
    (so autocommit can be switched on with nothing sent)."""
    if connection.in_transaction():
        return False
    driver: Any = connection.connection.driver_connection
    return bool(driver.info.transaction_status == 0)  # psycopg's TransactionStatus.IDLE
