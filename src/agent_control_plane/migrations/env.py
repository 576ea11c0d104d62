"""ACP's alembic env.py: all logic lives in agent_control_plane.migrations.environment."""

from alembic import context

from agent_control_plane.migrations.environment import run

run(context)  # type: ignore[arg-type]  # the module proxies an EnvironmentContext
