"""``acp demo``: ACP beside a host application's own alembic migrations."""

from __future__ import annotations

from agent_control_plane.demo.run import run_demo


def demo() -> None:
    """Run ACP next to a small host app on one SQLite file and show that the host's
    ``alembic revision --autogenerate`` never touches ACP's tables."""
    run_demo()
