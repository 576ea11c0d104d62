"""OpenTelemetry spans and metrics, read back with the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent_control_plane import AsyncControlPlane, ConfigurationError, ControlPlane
from agent_control_plane.errors import SessionNotFoundError, TokenBudgetExhausted
from agent_control_plane.rules.tokens import Identity, TokenUsage

POLICY = {
    "name": "observed",
    "tiers": {
        "unrestricted": ["read"],
        "always_approve": ["refund"],
        "blocked": ["drop_database"],
    },
}
PRICES = {"small": {"input": "1", "output": "2"}}
ALICE = Identity(org="acme", user="alice", agent="bot")
UNKNOWN_SESSION = "00000000-0000-4000-8000-000000000000"


@dataclass
class Otel:
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def points(self) -> dict[str, list[Any]]:
        """Every metric's data points by metric name."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(tracer_provider, spans, meter_provider, reader)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def _by_outcome(points: list[Any]) -> dict[str, float]:
    return {str(p.attributes["acp.outcome"]): p.value for p in points}


def _check_decisions(otel: Otel, session_id: str) -> None:
    spans = otel.finished("acp.govern")
    assert [span.attributes["acp.outcome"] for span in spans if span.attributes] == [
        "allowed",
        "denied",
        "needs_approval",
        "error",
    ]
    allowed, denied, approval, failed = (dict(span.attributes or {}) for span in spans)
    assert allowed["acp.session.id"] == session_id
    assert allowed["acp.action"] == "read"
    assert allowed["acp.reason"] == "tier.unrestricted:read"
    assert allowed["acp.agent.id"] == "bot"
    assert allowed["acp.tenant"] == "acme"
    assert allowed["acp.cost"] == 0.25
    assert allowed["acp.charged"] is True
    assert allowed["acp.budget.remaining_cost"] == 4.75
    assert allowed["acp.budget.remaining_actions"] == 9
    assert denied["acp.reason"] == "tier.blocked:drop_database"
    assert denied["acp.charged"] is False
    assert approval["acp.ticket.id"]
    assert failed["error.type"] == "SessionNotFoundError"
    assert failed["acp.session.id"] == UNKNOWN_SESSION
    assert spans[3].status.status_code is StatusCode.ERROR
    assert spans[3].events[0].name == "exception"
    assert all(span.status.status_code is StatusCode.UNSET for span in spans[:3])

    points = otel.points()
    decisions = {
        (str(p.attributes["acp.outcome"]), str(p.attributes.get("acp.reason"))): p.value
        for p in points["acp.decisions"]
    }
    assert decisions == {
        ("allowed", "tier.unrestricted"): 1,
        ("denied", "tier.blocked"): 1,
        ("needs_approval", "tier.always_approve"): 1,
        ("error", "None"): 1,
    }
    durations = points["acp.decision.duration"]
    assert sum(p.count for p in durations) == 4
    assert all(p.sum > 0 for p in durations)
    assert [(p.attributes, p.value) for p in points["acp.cost.charged"]] == [
        ({"acp.tenant": "acme"}, 0.25)
    ]
    assert [p.value for p in points["acp.approvals.pending"]] == [1]


def test_govern_spans_and_metrics(control_plane: ControlPlane, otel: Otel) -> None:
    session = control_plane.open_session(
        agent_id="bot", tenant="acme", policy=POLICY, max_cost=5, max_actions=10
    )
    control_plane.instrument(otel.tracer_provider, otel.meter_provider)
    control_plane.govern(session.id, "read", cost="0.25")
    control_plane.govern(session.id, "drop_database")
    control_plane.govern(session.id, "refund", args={"amount": 3})
    with pytest.raises(SessionNotFoundError):
        control_plane.govern(UNKNOWN_SESSION, "read")
    _check_decisions(otel, str(session.id))


async def test_async_govern_spans_and_metrics(
    async_control_plane: AsyncControlPlane, otel: Otel
) -> None:
    cp = async_control_plane
    session = await cp.open_session(
        agent_id="bot", tenant="acme", policy=POLICY, max_cost=5, max_actions=10
    )
    cp.instrument(otel.tracer_provider, otel.meter_provider)
    await cp.govern(session.id, "read", cost="0.25")
    await cp.govern(session.id, "drop_database")
    await cp.govern(session.id, "refund", args={"amount": 3})
    with pytest.raises(SessionNotFoundError):
        await cp.govern(UNKNOWN_SESSION, "read")
    # A metric reader collects on its own thread; the gauge's read runs on this loop.
    await asyncio.to_thread(_check_decisions, otel, str(session.id))


async def test_async_gauges_observe_nothing_from_the_loops_own_thread(
    async_control_plane: AsyncControlPlane, otel: Otel
) -> None:
    async_control_plane.instrument(otel.tracer_provider, otel.meter_provider)
    assert "acp.approvals.pending" not in otel.points()  # would deadlock if it waited
    points = await asyncio.to_thread(otel.points)
    assert [p.value for p in points["acp.approvals.pending"]] == [0]


def _check_tokens(otel: Otel, held: str, released: str) -> None:
    reserve = otel.finished("acp.reserve_tokens")
    assert len(reserve) == 3
    first = dict(reserve[0].attributes or {})
    assert first == {
        "acp.org": "acme",
        "acp.user": "alice",
        "acp.agent.id": "bot",
        "acp.model": "small",
        "acp.tokens.input": 1000,
        "acp.tokens.max_output": 500,
        "acp.outcome": "held",
        "acp.reservation.id": held,
        "acp.tokens.reserved": 1500,
        "acp.cost": 0.002,
    }
    refused = reserve[2]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "TokenBudgetExhausted"
    assert refused.attributes["acp.outcome"] == "error"
    assert refused.attributes["acp.token_budget.id"]

    (settled,) = otel.finished("acp.settle")
    assert dict(settled.attributes or {}) == {
        "acp.reservation.id": held,
        "acp.tokens.input": 1000,
        "acp.tokens.output": 100,
        "acp.tokens.total": 1100,
        "acp.outcome": "settled",
        "acp.model": "small",
        "acp.cost": 0.0012,
    }
    (dropped,) = otel.finished("acp.release")
    assert dict(dropped.attributes or {}) == {
        "acp.reservation.id": released,
        "acp.outcome": "released",
        "acp.model": "small",
    }
    points = otel.points()
    (used,) = points["acp.token_budget.tokens.used"]
    (left,) = points["acp.token_budget.tokens.remaining"]
    assert (used.value, left.value) == (1100, 2900)
    assert used.attributes["acp.token_budget.period"] == "day"
    assert used.attributes["acp.token_budget.scope"] == "org=acme|team=*|user=*|agent=*"
    (cost_used,) = points["acp.token_budget.cost.used"]
    assert cost_used.value == pytest.approx(0.0012)
    assert "acp.token_budget.cost.remaining" not in points  # no cost limit, nothing counts down


def test_token_spans_and_budget_gauges(control_plane: ControlPlane, otel: Otel) -> None:
    cp = control_plane
    cp.set_prices(PRICES)
    cp.set_token_budget(Identity(org="acme"), "day", max_tokens=4000)
    cp.instrument(otel.tracer_provider, otel.meter_provider)
    held = cp.reserve_tokens(ALICE, "small", input_tokens=1000, max_output_tokens=500)
    cp.settle(held, TokenUsage(1000, 100))
    dropped = cp.reserve_tokens(ALICE, "small", input_tokens=1000, max_output_tokens=500)
    cp.release(dropped.id)
    with pytest.raises(TokenBudgetExhausted):
        cp.reserve_tokens(ALICE, "small", input_tokens=3000, max_output_tokens=500)
    _check_tokens(otel, str(held.id), str(dropped.id))


async def test_async_token_spans_and_budget_gauges(
    async_control_plane: AsyncControlPlane, otel: Otel
) -> None:
    cp = async_control_plane
    cp.set_prices(PRICES)
    await cp.set_token_budget(Identity(org="acme"), "day", max_tokens=4000)
    cp.instrument(otel.tracer_provider, otel.meter_provider)
    held = await cp.reserve_tokens(ALICE, "small", input_tokens=1000, max_output_tokens=500)
    await cp.settle(held, TokenUsage(1000, 100))
    dropped = await cp.reserve_tokens(ALICE, "small", input_tokens=1000, max_output_tokens=500)
    await cp.release(dropped.id)
    with pytest.raises(TokenBudgetExhausted):
        await cp.reserve_tokens(ALICE, "small", input_tokens=3000, max_output_tokens=500)
    await asyncio.to_thread(_check_tokens, otel, str(held.id), str(dropped.id))


def test_uninstrument_restores_the_plain_methods(control_plane: ControlPlane, otel: Otel) -> None:
    session = control_plane.open_session(agent_id="bot", policy=POLICY, max_cost=5, max_actions=9)
    control_plane.instrument(otel.tracer_provider, otel.meter_provider)
    assert "govern" in vars(control_plane)
    with pytest.raises(ConfigurationError, match="instrumented already"):
        control_plane.instrument(otel.tracer_provider, otel.meter_provider)
    control_plane.govern(session.id, "read")
    control_plane.uninstrument()
    assert not {"govern", "reserve_tokens", "settle", "release"} & set(vars(control_plane))
    control_plane.govern(session.id, "read")
    assert len(otel.finished("acp.govern")) == 1
    assert "acp.approvals.pending" not in otel.points()  # gauges fall silent too


def test_the_global_providers_are_the_default(control_plane: ControlPlane) -> None:
    # With no SDK configured the global providers are no-ops: instrumenting still works.
    session = control_plane.open_session(agent_id="bot", policy=POLICY, max_cost=5, max_actions=9)
    control_plane.instrument()
    assert control_plane.govern(session.id, "read").allowed


def test_acp_works_without_opentelemetry_installed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys

        class NoOpenTelemetry:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, NoOpenTelemetry())
        from agent_control_plane import ConfigurationError, ControlPlane

        with ControlPlane.open("sqlite:///{tmp_path / "plain.db"}") as cp:
            policy = {{"name": "p", "tiers": {{"unrestricted": ["read"]}}}}
            session = cp.open_session(agent_id="a", policy=policy, max_cost=1, max_actions=5)
            assert cp.govern(session.id, "read").allowed
            try:
                cp.instrument()
            except ConfigurationError as error:
                print("refused:", error)
            assert cp.govern(session.id, "read").allowed
        assert not any(name.startswith("opentelemetry") for name in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: OpenTelemetry is not installed: pip install" in result.stdout
    assert "[otel]" in result.stdout


async def test_an_async_control_plane_is_instrumented_from_its_loop(
    async_control_plane: AsyncControlPlane, otel: Otel
) -> None:
    with pytest.raises(ConfigurationError, match="from inside the event loop"):
        await asyncio.to_thread(
            async_control_plane.instrument, otel.tracer_provider, otel.meter_provider
        )
    assert "govern" not in vars(async_control_plane)
