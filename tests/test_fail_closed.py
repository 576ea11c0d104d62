"""A database that refuses writes stops the agent with a clear error (fail closed)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from agent_control_plane import ControlPlane
from agent_control_plane.errors import GovernanceUnavailableError
from tests.databases import TestDatabase
from tests.policies import SUPPORT_BOT


def test_a_database_error_denies_and_writes_nothing(pg_database: TestDatabase) -> None:
    with ControlPlane.open(pg_database.url_string) as cp:
        sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=1, max_actions=5).id
        before = cp.get_session(sid)
        admin = create_engine(pg_database.url, isolation_level="AUTOCOMMIT")
        name = pg_database.url.database
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
        cp.engine.dispose()  # new connections pick up the read-only default
        try:
            with pytest.raises(GovernanceUnavailableError, match="fail closed"):
                cp.govern(sid, "work", cost="0.1")
            with pytest.raises(GovernanceUnavailableError):
                cp.govern(sid, "work", cost="0.1", idempotency_key="k")
        finally:
            with admin.connect() as connection:
                connection.execute(
                    text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
                )
            admin.dispose()
        cp.engine.dispose()
        after = cp.get_session(sid)
        assert (after.actions_used, after.cost_used) == (before.actions_used, before.cost_used)
        assert len(cp.events(sid)) == 1
        assert cp.govern(sid, "work", cost="0.1").allowed
