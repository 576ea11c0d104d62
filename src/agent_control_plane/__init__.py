"""Embeddable governance for AI agents: budgets, policies, approvals, a kill switch and
a tamper-evident audit trail, stored in your application's own SQL database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Names load on first use: alembic imports our guard plugin while alembic itself
# is being imported, and that must not drag in the whole control plane.
_EXPORTS = {
    "ControlPlane": "agent_control_plane.control_plane",
    "AsyncControlPlane": "agent_control_plane.control_plane",
    "Layout": "agent_control_plane.schema.layout",
    "__version__": "agent_control_plane.version",
    "ControlPlaneError": "agent_control_plane.errors",
    "ConfigurationError": "agent_control_plane.errors",
    "UnsupportedDatabaseError": "agent_control_plane.errors",
    "SchemaNotCurrentError": "agent_control_plane.errors",
    "MigrationError": "agent_control_plane.errors",
    "GovernanceUnavailableError": "agent_control_plane.errors",
    "GovernanceBusyError": "agent_control_plane.errors",
    "OutcomeUnknownError": "agent_control_plane.errors",
    "ControlPlaneClosedError": "agent_control_plane.errors",
}

__all__ = [
    "AsyncControlPlane",
    "ConfigurationError",
    "ControlPlane",
    "ControlPlaneClosedError",
    "ControlPlaneError",
    "GovernanceBusyError",
    "GovernanceUnavailableError",
    "Layout",
    "MigrationError",
    "OutcomeUnknownError",
    "SchemaNotCurrentError",
    "UnsupportedDatabaseError",
    "__version__",
]

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
    from agent_control_plane.errors import (
        ConfigurationError,
        ControlPlaneClosedError,
        ControlPlaneError,
        GovernanceBusyError,
        GovernanceUnavailableError,
        MigrationError,
        OutcomeUnknownError,
        SchemaNotCurrentError,
        UnsupportedDatabaseError,
    )
    from agent_control_plane.schema.layout import Layout
    from agent_control_plane.version import __version__


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agent_control_plane' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
