"""Pure rules behind maintenance: settings checks and chains that resume at an anchor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules.audit import Anchor, StoredEvent, verify_chain
from agent_control_plane.rules.maintenance import MaintenanceReport, MaintenanceSettings
from tests.unit.test_audit_rules import SESSION, chain


def _problems(
    events: list[StoredEvent], expected: int, anchor: Anchor, head: str | None = None
) -> list[tuple[int, str]]:
    return [(p.seq, p.problem) for p in verify_chain(SESSION, events, expected, head, anchor)]


def test_a_pruned_chain_verifies_from_its_anchor() -> None:
    events = chain(6)
    anchor = Anchor(3, events[2].hash)
    assert _problems(events[3:], 6, anchor, events[-1].hash) == []
    # Everything pruned: the anchor is the head.
    assert _problems([], 6, Anchor(6, events[-1].hash), events[-1].hash) == []


def test_a_wrong_anchor_or_a_leftover_pruned_event_is_named() -> None:
    events = chain(6)
    assert _problems(events[3:], 6, Anchor(3, "f" * 64)) == [(4, "broken_link")]
    assert _problems(events[4:], 6, Anchor(3, events[2].hash)) == [
        (4, "missing"),
        (5, "broken_link"),
    ]
    assert _problems([events[1], *events[3:]], 6, Anchor(3, events[2].hash)) == [(2, "unexpected")]
    assert Anchor.of(None, None) == Anchor()


def test_settings_parse_durations_and_refuse_nonsense() -> None:
    settings = MaintenanceSettings.of(
        escalate_after="30m", heartbeat_timeout=90, event_retention=timedelta(days=7)
    )
    assert settings.escalate_after == timedelta(minutes=30)
    assert settings.heartbeat_timeout == timedelta(seconds=90)
    assert MaintenanceSettings.of() == MaintenanceSettings()
    with pytest.raises(InvalidInputError, match="webhook_url: is only used with escalate_after"):
        MaintenanceSettings.of(webhook_url="http://hooks.example/x")
    with pytest.raises(InvalidInputError, match="on_stale"):
        MaintenanceSettings.of(on_stale="kill")
    with pytest.raises(InvalidInputError, match="batch_size"):
        MaintenanceSettings.of(batch_size=10_001)


def test_a_report_is_ok_unless_a_webhook_or_a_chain_failed() -> None:
    assert MaintenanceReport(tickets_escalated=3).ok
    assert not MaintenanceReport(webhook_failures=1).ok
    assert not MaintenanceReport(sessions_not_pruned=1).ok
    assert MaintenanceReport(events_pruned=2).to_json_data()["events_pruned"] == 2
