"""govern() with OpenTelemetry on (SDK tracer and meter, spans batched and dropped) vs off."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent_control_plane import ControlPlane
from agent_control_plane.telemetry.attributes import GOVERN
from bench.governing import _one, _session
from bench.timing import ops_per_second


class _Discard(SpanExporter):
    """An exporter that costs nothing, so the figure is ACP's and the SDK's share."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def instrumented_govern_ops_per_second(url: str, seconds: float) -> float:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        with ControlPlane.open(url) as cp:
            sid = _session(cp)
            cp.instrument(tracer_provider, meter_provider)
            return ops_per_second(lambda: _one(cp, sid), seconds)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def instrumentation_microseconds_per_call(url: str, seconds: float) -> float:
    """What the telemetry wrapper adds to one govern call: span, attributes and metrics
    around a call that returns a ready Decision (no database), so machine noise in the
    database round trips does not drown it."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        with ControlPlane.open(url) as cp:
            sid = _session(cp)
            decision = cp.govern(sid, "work", cost="0.0001")
            cp.instrument(tracer_provider, meter_provider)
            assert cp._instrumentation is not None
            traced = cp._instrumentation._wrap_sync(GOVERN, lambda *_a, **_k: decision)
            calls = ops_per_second(lambda: traced(sid, "work", cost="0.0001"), seconds)
            return 1_000_000 / calls
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
