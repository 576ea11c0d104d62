"""Span attributes from a call's arguments: pure, and never raising on bad input."""

from __future__ import annotations

from agent_control_plane.rules.tokens import Identity, TokenUsage
from agent_control_plane.telemetry.attributes import (
    failure,
    govern_request,
    reason_category,
    reserve_request,
    settle_request,
)


def test_metrics_keep_only_the_low_cardinality_part_of_a_reason() -> None:
    assert reason_category("approval.once:6f1c2b9e-0000-4000-8000-000000000000") == "approval.once"
    assert reason_category("budget.max_cost") == "budget.max_cost"


def test_bad_arguments_leave_their_attribute_out_instead_of_raising() -> None:
    assert govern_request("sid", "act", cost="not money") == {
        "acp.session.id": "sid",
        "acp.action": "act",
    }
    assert govern_request("sid", "act", cost="0.10")["acp.cost"] == 0.1
    assert reserve_request("not an identity", None, input_tokens=True) == {}
    assert settle_request("rid", usage=None) == {"acp.reservation.id": "rid"}


def test_identity_and_usage_become_attributes() -> None:
    attributes = reserve_request(
        Identity(org="o", team="t"), "m", input_tokens=3, max_output_tokens=4, session_id="s"
    )
    assert attributes == {
        "acp.org": "o",
        "acp.team": "t",
        "acp.model": "m",
        "acp.tokens.input": 3,
        "acp.tokens.max_output": 4,
        "acp.session.id": "s",
    }
    assert settle_request("r", TokenUsage(2, 5))["acp.tokens.total"] == 7


def test_a_failure_names_its_type_and_budget() -> None:
    error = ValueError("x")
    error.budget_id = "b-1"  # type: ignore[attr-defined]
    assert failure(error) == {
        "acp.outcome": "error",
        "error.type": "ValueError",
        "acp.token_budget.id": "b-1",
    }
