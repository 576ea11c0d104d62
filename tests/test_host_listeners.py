"""A host that listens to the statements on its engine (OpenTelemetry's SQLAlchemy
instrumentation, ``echo``, its own hooks) sees every statement ACP sends, the hot path
included: ACP sends straight to the driver only where nobody listens."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from agent_control_plane import ControlPlane
from agent_control_plane.store.prepared import Prepared
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT


def test_a_listening_host_sees_every_statement_of_a_warm_govern(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=10, max_actions=100).id
    cp.govern(sid, "work")
    seen: list[str] = []
    direct: list[str] = []
    run = Prepared._run

    def sent_direct(self: Prepared, *args: Any, **kwargs: Any) -> Any:
        direct.append(self.sql)
        return run(self, *args, **kwargs)

    def listened(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.split()[0].upper())

    Prepared._run = sent_direct  # type: ignore[method-assign]
    event.listen(cp.engine, "before_cursor_execute", listened)
    try:
        for key in ("one", "two"):
            assert cp.govern(sid, "work", cost="0.5", idempotency_key=key).allowed
        assert cp.govern(sid, "work", cost="0.5", idempotency_key="two").allowed  # replayed
    finally:
        event.remove(cp.engine, "before_cursor_execute", listened)
        Prepared._run = run  # type: ignore[method-assign]
    assert direct == []
    assert seen
    assert {"UPDATE", "WITH", "INSERT"} & set(seen)
    assert cp.get_session(sid).actions_used == 3
    assert cp.verify_audit(sid).ok
    # Nobody listens any more: the hot path goes straight to the driver again.
    Prepared._run = sent_direct  # type: ignore[method-assign]
    try:
        cp.govern(sid, "work", cost="0.5", idempotency_key="three")
    finally:
        Prepared._run = run  # type: ignore[method-assign]
    assert direct if database.dialect != "mysql" else direct == []
