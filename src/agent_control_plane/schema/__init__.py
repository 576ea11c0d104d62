"""ACP's schema: the layout, the column types and the tables, defined once."""

from agent_control_plane.schema.layout import Layout, resolve_layout
from agent_control_plane.schema.tables import LOGICAL_TABLES, AcpTables, build_tables

__all__ = ["LOGICAL_TABLES", "AcpTables", "Layout", "build_tables", "resolve_layout"]
