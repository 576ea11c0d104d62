"""The host kit: keep ACP's objects out of your alembic autogenerate, or run ACP's
migrations from your own revisions (``agent_control_plane.alembic.host``)."""

from agent_control_plane.alembic.filters import (
    acp_autogenerate_options,
    include_acp_names,
    include_acp_tables,
)
from agent_control_plane.alembic.stubs import acp_table_stub

__all__ = ["acp_autogenerate_options", "acp_table_stub", "include_acp_names", "include_acp_tables"]
