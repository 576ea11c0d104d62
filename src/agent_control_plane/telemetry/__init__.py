"""OpenTelemetry spans and metrics for a control plane (the optional ``otel`` extra).

Imported only by ``instrument()``: ACP itself never imports OpenTelemetry, so it works,
unchanged and at full speed, without the extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_control_plane.errors import ConfigurationError

try:
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401
except ImportError as missing:
    raise ConfigurationError(
        "OpenTelemetry is not installed: pip install 'agent-control-plane-sql[otel]' "
        f"to use instrument() ({missing})"
    ) from missing

from agent_control_plane.telemetry.instrumentation import Instrumentation

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

__all__ = ["Instrumentation", "instrument"]


def instrument(
    control_plane: ControlPlane | AsyncControlPlane,
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> Instrumentation:
    """Trace and measure ``control_plane``'s governed calls; see ``ControlPlane.instrument``."""
    instrumentation = Instrumentation(control_plane, tracer_provider, meter_provider)
    instrumentation.install()
    return instrumentation
