"""acp_0010 on a trail written before it: old links still verify, old prune markers are
backed by (unsigned) anchors, and new events carry on the same chains."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from agent_control_plane import ControlPlane
from agent_control_plane.rules.audit import GENESIS_HASH, EventContent, event_hash
from agent_control_plane.schema.tables import AcpTables, build_tables
from agent_control_plane.schema.types import to_money
from tests.acp_helpers import engine_for, migrator_for
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT

BEFORE = "acp_0007"
HALF = to_money("0.5")  # as validation left every amount: 9 places


def _legacy_session(
    connection: Connection, tables: AcpTables, status: str, events: int, pruned: int = 0
) -> uuid.UUID:
    """A session whose events were linked as before counters and keys existed, the first
    ``pruned`` of them deleted behind the session row's marker, as pruning then left them."""
    now = datetime.now(UTC)
    policy_id, session_id = uuid.uuid4(), uuid.uuid4()
    connection.execute(
        insert(tables.policies).values(
            id=policy_id,
            name=f"legacy-{policy_id}",
            version=1,
            digest=policy_id.hex * 2,
            document=SUPPORT_BOT,
            created_at=now,
        )
    )
    rows: list[dict[str, Any]] = []
    previous = GENESIS_HASH
    for seq in range(1, events + 1):
        content = EventContent(session_id, seq, "decision", "work", "allowed", "r", HALF, {}, now)
        link = event_hash(previous, content)
        rows.append(
            {
                "session_id": session_id,
                "seq": seq,
                "kind": "decision",
                "action": "work",
                "outcome": "allowed",
                "reason": "r",
                "cost": HALF,
                "payload": {},
                "created_at": now,
                "prev_hash": previous,
                "hash": link,
            }
        )
        previous = link
    connection.execute(
        insert(tables.sessions).values(
            id=session_id,
            agent_id="legacy",
            policy_id=policy_id,
            status=status,
            max_cost=Decimal(100),
            cost_used=Decimal("0.5") * events,
            max_actions=100,
            actions_used=events,
            next_seq=events + 1,
            last_event_hash=previous,
            created_at=now,
            updated_at=now,
            pruned_seq=pruned or None,
            pruned_hash=rows[pruned - 1]["hash"] if pruned else None,
        )
    )
    for row in rows[pruned:]:
        connection.execute(insert(tables.events).values(**row))
    return session_id


def test_a_trail_from_before_the_upgrade_verifies_and_grows(database: TestDatabase) -> None:
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection, BEFORE)
        with engine.begin() as connection:
            pruned = _legacy_session(connection, tables, "completed", 5, pruned=2)
            active = _legacy_session(connection, tables, "active", 3)
        with engine.connect() as connection:
            migrator.upgrade(connection)
            anchors = tables.audit_anchors.c
            moved = connection.execute(
                select(anchors.session_id, anchors.seq, anchors.signature)
            ).all()
    assert [tuple(row) for row in moved] == [(pruned, 2, None)]
    with ControlPlane.open(database.url_string) as cp:
        before = cp.verify_audit()
        assert before.ok, before.problems
        assert cp.govern(active, "work", cost="1").allowed
        last = cp.events(active)[-1]
        assert (last.seq, last.cost_used, last.actions_used) == (4, Decimal("2.5"), 4)
        report = cp.verify_audit()
        assert (report.ok, report.events_checked) == (True, 3 + 4), report.problems
