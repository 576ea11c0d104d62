"""Resources are decided, approved and stored in one canonical form, on every path into
``govern`` (SDK sync and async, gateway, ``@governed``), on each database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ActionDenied, InvalidInputError
from agent_control_plane.gateway import create_app
from tests.databases import TestDatabase
from tests.gateway_helpers import Client

POLICY: dict[str, Any] = {
    "name": "files",
    "default": "allow",
    "tiers": {"always_approve": ["fs.write"]},
    "assets": {"deny": ["file:secrets/*"]},
}
# Ways to name secrets/key (or the secrets folder itself) the deny pattern once missed.
SPELLINGS = [
    "file:./secrets/key",
    "file:x/../secrets/key",
    "file:secrets//key",
    "file:secrets/./key",
    "file:x/%2e%2E/secrets/key",
    "file:%73ecrets/key",
    "file:secrets%2Fkey",
    "file:secrets\\key",
    "FILE:secrets/key",
    "file:SECRETS/Key",
    "file:secrets",
    "file:secrets/",
]
INVALID = [
    "file:../secrets/key",
    "file:x/../../secrets/key",
    "file:%2e%2e/secrets/key",
    "file:..%2fsecrets/key",
    "file:..\\secrets\\key",
    "file:/../etc/passwd",
    "file:secrets/key%00.txt",
    "file:%ff",
    "https://example.com/../admin",
]


def _session(cp: ControlPlane, policy: dict[str, Any] = POLICY) -> str:
    return str(cp.open_session(agent_id="a", policy=policy, max_cost=10, max_actions=100).id)


def test_every_spelling_of_a_denied_resource_is_denied(control_plane: ControlPlane) -> None:
    sid = _session(control_plane)
    for resource in SPELLINGS:
        decision = control_plane.govern(sid, "fs.read", resource=resource)
        assert (decision.outcome.value, decision.reason) == ("denied", "assets.out_of_scope"), (
            resource
        )
    allowed = control_plane.govern(sid, "fs.read", resource="file:./public/../notes.txt")
    assert allowed.allowed
    events = [e for e in control_plane.events(sid) if e.kind == "decision"]
    stored = [e.payload["resource"] for e in events]
    assert stored[:3] == ["file:secrets/key"] * 3
    assert stored[-1] == "file:notes.txt"


def test_a_resource_without_a_canonical_form_is_denied_and_recorded(
    control_plane: ControlPlane,
) -> None:
    sid = _session(control_plane)
    for resource in INVALID:
        decision = control_plane.govern(sid, "fs.read", resource=resource)
        assert (decision.outcome.value, decision.reason) == (
            "denied",
            "assets.invalid_resource",
        ), resource
    decisions = [e for e in control_plane.events(sid) if e.kind == "decision"]
    # The trail keeps what the agent asked for: it has no other form.
    assert [e.payload["resource"] for e in decisions] == INVALID
    assert [e.reason for e in decisions] == ["assets.invalid_resource"] * len(INVALID)
    assert control_plane.get_session(sid).actions_used == 0
    assert control_plane.verify_audit(session_id=sid).ok


def test_an_approval_binds_the_canonical_resource(control_plane: ControlPlane) -> None:
    sid = _session(control_plane)
    asked = control_plane.govern(sid, "fs.write", resource="file:reports/a")
    assert asked.outcome.value == "needs_approval"
    assert asked.ticket_id is not None
    # The same request, spelled differently, waits on the same ticket.
    again = control_plane.govern(sid, "fs.write", resource="file:./reports//a")
    assert again.ticket_id == asked.ticket_id
    control_plane.approve(asked.ticket_id, by="alice")
    used = control_plane.govern(sid, "fs.write", resource="file:x/../reports/a/")
    assert used.allowed
    assert used.reason == f"approval.once:{asked.ticket_id}"
    (ticket,) = control_plane.list_tickets(session_id=sid).items
    assert ticket.resource == "file:reports/a"


def test_a_session_scope_covers_canonical_resources_only(control_plane: ControlPlane) -> None:
    sid = _session(control_plane)
    asked = control_plane.govern(sid, "fs.write", resource="file:reports/a")
    assert asked.ticket_id is not None
    limits = {"resources": ["file:./reports/*"]}
    ticket = control_plane.approve(
        asked.ticket_id, by="alice", scope="session", scope_limits=limits
    )
    assert ticket.scope_resources == ["file:reports/*"]
    assert control_plane.govern(sid, "fs.write", resource="file:reports/b").allowed
    # reports/../outbox/b matched the pattern as written; it is outbox/b.
    escaped = control_plane.govern(sid, "fs.write", resource="file:reports/../outbox/b")
    assert escaped.outcome.value == "needs_approval"
    # Allow patterns and scopes match in the exact case; only deny patterns ignore it.
    cased = control_plane.govern(sid, "fs.write", resource="file:REPORTS/b")
    assert cased.outcome.value == "needs_approval"
    with pytest.raises(InvalidInputError, match="can never match"):
        control_plane.approve(
            escaped.ticket_id or "",
            by="alice",
            scope="session",
            scope_limits={"resources": ["../*"]},
        )


def test_a_root_makes_absolute_paths_relative_and_denies_those_outside(
    control_plane: ControlPlane,
) -> None:
    sid = _session(control_plane)

    def decide(resource: str, root: str | None = "/srv/files/") -> tuple[str, str]:
        decision = control_plane.govern(sid, "fs.read", resource=resource, resource_root=root)
        return decision.outcome.value, decision.reason

    assert decide("file:/srv/files/secrets/key") == ("denied", "assets.out_of_scope")
    assert decide("file:///srv/files/x/../secrets/key") == ("denied", "assets.out_of_scope")
    assert decide("file:/srv/files/notes") == ("allowed", "policy.default_allow")
    assert decide("file:/srv/other/notes") == ("denied", "assets.invalid_resource")
    assert decide("file:/srv/files/../other") == ("denied", "assets.invalid_resource")
    assert decide("file:../x") == ("denied", "assets.invalid_resource")
    # Without a root an absolute path is itself.
    assert decide("file:/srv/files/secrets/key", None) == ("allowed", "policy.default_allow")
    decisions = [e for e in control_plane.events(sid) if e.kind == "decision"]
    assert decisions[2].payload["resource"] == "file:notes"
    with pytest.raises(InvalidInputError, match="resource_root"):
        decide("file:a", "srv/files")


@pytest.mark.parametrize("path", ["sync", "async", "gateway", "governed"])
def test_every_path_into_govern_compares_canonical_resources(
    database: TestDatabase, path: str
) -> None:
    resource = "file:notes/../secrets/key"
    with ControlPlane.open(database.url_string) as cp:
        sid = _session(cp)
        if path == "sync":
            reason = cp.govern(sid, "fs.read", resource=resource).reason
        elif path == "async":

            async def govern() -> str:
                async with await AsyncControlPlane.open(database.async_url_string) as acp:
                    return (await acp.govern(sid, "fs.read", resource=resource)).reason

            reason = asyncio.run(govern())
        elif path == "gateway":
            key = cp.create_api_key("admin").key
            answer = Client(create_app(cp)).request(
                "POST",
                f"/v1/sessions/{sid}/govern",
                json={"action": "fs.read", "resource": resource},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200, answer.text
            reason = answer.json()["reason"]
        else:

            @cp.governed("fs.read", session=sid, resource=lambda name: f"file:notes/../{name}")
            def read(name: str) -> str:
                raise AssertionError("never runs")

            with pytest.raises(ActionDenied) as denied:
                read("secrets/key")
            reason = denied.value.reason
        assert reason == "assets.out_of_scope"
        (event,) = [e for e in cp.events(sid) if e.kind == "decision"]
        assert event.payload["resource"] == "file:secrets/key"
