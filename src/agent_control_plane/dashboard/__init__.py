"""The operator dashboard: server-rendered pages under ``/ui`` of the REST gateway.

Needs the ``dashboard`` extra: ``pip install 'agent-control-plane-sql[dashboard]'``.
"""

from __future__ import annotations

try:
    import itsdangerous  # noqa: F401
    import jinja2  # noqa: F401
    import python_multipart  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the ACP dashboard needs Jinja2, python-multipart and itsdangerous: "
        "pip install 'agent-control-plane-sql[dashboard]'"
    ) from exc

from agent_control_plane.dashboard.app import SECRET_VARIABLE, create_dashboard

__all__ = ["SECRET_VARIABLE", "create_dashboard"]
