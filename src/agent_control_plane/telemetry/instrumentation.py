"""Spans and metrics around one control plane's governed calls.

``instrument()`` replaces the traced methods *on the instance* with wrappers, and
``uninstrument()`` deletes them again: a control plane that was never instrumented runs
the very same code as before, without a flag to test on the hot path.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from agent_control_plane.telemetry import attributes as names
from agent_control_plane.telemetry.attributes import GOVERN, TRACED, Attributes, Traced
from agent_control_plane.telemetry.gauges import Gauges

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
    from agent_control_plane.runtime import Runtime

INSTRUMENTATION_NAME = "agent_control_plane"
# Decisions take a few milliseconds; the SDK's default buckets are for milliseconds
# counted as whole numbers and would put every decision in the first bucket.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _version() -> str:
    from agent_control_plane.version import __version__

    return __version__


class Instrumentation:
    """The tracer, the instruments and the wrappers of one control plane."""

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        self._control_plane = control_plane
        version = _version()
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, version, tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, version, meter_provider)
        self.decisions = meter.create_counter(
            "acp.decisions", unit="{decision}", description="Governed decisions, by outcome."
        )
        self.duration = meter.create_histogram(
            "acp.decision.duration",
            unit="s",
            description="How long govern() took, as its caller saw it.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.charged = meter.create_counter(
            "acp.cost.charged", unit="USD", description="Cost charged to session budgets."
        )
        self.gauges = Gauges(control_plane, meter)
        self._installed: list[str] = []

    @property
    def _runtime(self) -> Runtime:
        return self._control_plane._runtime

    def install(self) -> None:
        for traced in TRACED:
            bound = getattr(self._control_plane, traced.method)
            wrap = self._wrap_async if inspect.iscoroutinefunction(bound) else self._wrap_sync
            setattr(self._control_plane, traced.method, wrap(traced, bound))
            self._installed.append(traced.method)

    def remove(self) -> None:
        for method in self._installed:
            delattr(self._control_plane, method)
        self._installed.clear()
        self.gauges.stop()

    def _wrap_sync(self, traced: Traced, bound: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(bound)
        def method(*args: Any, **kwargs: Any) -> Any:
            with self.tracer.start_as_current_span(
                traced.span_name, attributes=traced.request(*args, **kwargs)
            ) as span:
                started = time.perf_counter()
                try:
                    result = bound(*args, **kwargs)
                except Exception as error:
                    self._failed(traced, span, error, started)
                    raise
                self._succeeded(traced, span, result, started)
                return result

        return method

    def _wrap_async(
        self, traced: Traced, bound: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        @functools.wraps(bound)
        async def method(*args: Any, **kwargs: Any) -> Any:
            with self.tracer.start_as_current_span(
                traced.span_name, attributes=traced.request(*args, **kwargs)
            ) as span:
                started = time.perf_counter()
                try:
                    result = await bound(*args, **kwargs)
                except Exception as error:
                    self._failed(traced, span, error, started)
                    raise
                self._succeeded(traced, span, result, started)
                return result

        return method

    def _succeeded(self, traced: Traced, span: trace.Span, result: Any, started: float) -> None:
        described = traced.result(result, self._runtime)
        span.set_attributes(described)
        if traced is GOVERN:
            reason = str(described[names.REASON])
            self._count_decision(
                {
                    names.OUTCOME: described[names.OUTCOME],
                    names.REASON: names.reason_category(reason),
                },
                started,
            )
            if result.charged and result.cost:
                tenant = described.get(names.TENANT)
                self.charged.add(
                    float(result.cost), {} if tenant is None else {names.TENANT: tenant}
                )

    def _failed(self, traced: Traced, span: trace.Span, error: Exception, started: float) -> None:
        # The span's context manager records the exception and sets status ERROR.
        described = names.failure(error)
        span.set_attributes(described)
        if traced is GOVERN:
            self._count_decision(
                {names.OUTCOME: names.ERROR_OUTCOME, names.ERROR_TYPE: described[names.ERROR_TYPE]},
                started,
            )

    def _count_decision(self, attributes: Attributes, started: float) -> None:
        self.duration.record(time.perf_counter() - started, attributes)
        self.decisions.add(1, attributes)
