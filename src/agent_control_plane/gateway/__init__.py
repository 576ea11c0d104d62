"""The REST gateway: ``create_app(control_plane)`` returns a FastAPI (ASGI) app.

Needs the ``gateway`` extra: ``pip install 'agent-control-plane-sql[gateway]'``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the ACP gateway needs FastAPI: pip install 'agent-control-plane-sql[gateway]'"
    ) from exc

from agent_control_plane.gateway.app import create_app

__all__ = ["create_app"]
