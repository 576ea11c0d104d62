"""ACP's event kinds are ACP's: callers write only ``app.*``, on every path and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import InvalidInputError
from agent_control_plane.gateway import create_app
from agent_control_plane.integrations.mcp_proxy.governor import ToolGovernor
from agent_control_plane.loading import load_policy_file
from agent_control_plane.rules.event_kinds import ACP_KINDS
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.events import NewEvent, Slot
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY, Api, Client, Gateway, assert_problem, gateway_on
from tests.maintenance_helpers import TINY, wait_past
from tests.policies import SUPPORT_BOT

MCP_POLICY = Path(__file__).parent / "mcp_tools" / "policy.yaml"
FORGED = [
    *sorted(ACP_KINDS),
    "session.resumed.x",
    "approval.approved",
    "token.reserved",
    "kill.agent",
    "delegation.x",
    "note",
    "app",
    "app.",
    "App.note",
    "apps.note",
    "app.note\n",
    "app." + "x" * 61,
]


@pytest.fixture
def gateway(database: TestDatabase) -> Iterator[Gateway]:
    with gateway_on(database.url_string) as opened:
        yield opened


def _event_count(cp: ControlPlane) -> int:
    with cp.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(cp.tables.events)).one()[0])


def _every_kind_acp_writes(cp: ControlPlane) -> set[str]:
    """Drive each path on which ACP records an event; return the kinds it recorded."""
    policy = {**SUPPORT_BOT, "approval_timeout": "1h"}
    sid = cp.open_session(agent_id="a", policy=policy, max_cost=10, max_actions=100).id
    allowed = cp.govern(sid, "read_ticket")
    cp.record_outcome(allowed, "succeeded")
    cp.pause_session(sid)
    cp.resume_session(sid)
    approved, denied, _escalated = (
        cp.govern(sid, "issue_refund", args={"n": n}).ticket_id for n in range(3)
    )
    assert approved is not None
    assert denied is not None
    cp.approve(approved, "alice")
    cp.deny(denied, "alice", "no")
    wait_past(TINY)
    assert cp.run_maintenance(escalate_after="1ms").tickets_escalated == 1
    cp.register_agent("a", capabilities=["x"])
    cp.register_agent("b", capabilities=["x"])
    cp.delegate("a", "b", "task", capability="x", session_id=sid)
    cp.delegate("a", "b", "task", capability="y", session_id=sid)
    cp._record_event(sid, "mcp.refused", {"tool": "t"})
    cp.complete_session(sid)
    quick = {**SUPPORT_BOT, "name": "quick", "approval_timeout": "1ms"}
    other = cp.open_session(agent_id="a", policy=quick, max_cost=10, max_actions=100).id
    cp.govern(other, "issue_refund")
    wait_past(TINY)
    assert cp.expire_tickets() == 1
    cp.kill_session(other)
    return {event.kind for sid_ in (sid, other) for event in cp.events(sid_)}


def test_every_kind_acp_writes_is_refused_to_callers(control_plane: ControlPlane) -> None:
    cp = control_plane
    written = _every_kind_acp_writes(cp)
    assert written == ACP_KINDS
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=1, max_actions=1).id
    before = _event_count(cp)
    for kind in FORGED:
        with pytest.raises(InvalidInputError) as refused:
            cp.emit(sid, kind, {"forged": True})
        assert refused.value.field == "kind"
        assert "app." in str(refused.value)
    with pytest.raises(InvalidInputError, match="recorded by ACP only"):
        cp.emit(sid, "approval.approved", {})
    assert _event_count(cp) == before
    assert cp.emit(sid, "app.note", {"n": 1}).kind == "app.note"
    assert cp.emit(sid, "app.billing:invoice-sent_2", None).seq == 3
    assert cp.verify_audit().ok


async def test_the_async_emit_takes_only_app_kinds(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = (await acp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=1, max_actions=1)).id
    for kind in ("approval.approved", "mcp.refused", "decision", "note"):
        with pytest.raises(InvalidInputError):
            await acp.emit(sid, kind, {})
    assert (await acp.emit(sid, "app.note", {})).kind == "app.note"
    assert [event.kind for event in await acp.events(sid)] == ["session.opened", "app.note"]


def test_the_gateway_refuses_acp_kinds_with_422(gateway: Gateway) -> None:
    admin = gateway.as_role("admin")
    agent = gateway.as_role("agent", agents=["bot"])
    policy = admin.post("/v1/policies", POLICY).json()["id"]
    body = {"agent_id": "bot", "policy": policy, "max_cost": "1", "max_actions": 5}
    sid = agent.post("/v1/sessions", body).json()["id"]
    for key in (admin, agent):
        for kind in ("approval.approved", "mcp.refused", "decision", "session.killed", "note"):
            forged = key.post(f"/v1/sessions/{sid}/events", {"kind": kind, "payload": {}})
            assert assert_problem(forged, 422, "invalid_input")["field"] == "kind", kind
    emitted = agent.post(f"/v1/sessions/{sid}/events", {"kind": "app.note", "payload": {"a": 1}})
    assert emitted.status_code == 201, emitted.text
    feed = admin.get("/v1/events", params={"kind": "approval.approved"}).json()["items"]
    assert feed == []
    kinds = [event["kind"] for event in agent.get(f"/v1/sessions/{sid}/events").json()]
    assert kinds == ["session.opened", "app.note"]


async def test_the_mcp_proxy_records_its_refusals_as_acp(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    document = load_policy_file(MCP_POLICY)
    sid = (await acp.open_session(agent_id="a", policy=document, max_cost=1, max_actions=5)).id
    governor = ToolGovernor(acp, sid, CompiledPolicy.compile(document))

    async def forward() -> object:
        raise AssertionError("a refused call never reaches the server")

    refused = await governor.call("unmapped_tool", {}, 1, forward)  # type: ignore[arg-type]
    assert refused["isError"]
    (event,) = [event for event in await acp.events(sid) if event.kind == "mcp.refused"]
    assert event.payload["tool"] == "unmapped_tool"


def test_events_written_before_the_namespace_stay_readable(control_plane: ControlPlane) -> None:
    """Rows of kinds that callers may no longer write (``note``) are read, filtered and
    verified as before."""
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=SUPPORT_BOT, max_cost=1, max_actions=1).id
    runtime = cp._runtime
    with cp.engine.connect() as connection, connection.begin():
        row = session_store.allocate_seq(connection, runtime, sid)
        event_store.append(
            connection, runtime, Slot.of(row), NewEvent("note", payload={"old": 1}), runtime.clock()
        )
    assert [event.kind for event in cp.events(sid)] == ["session.opened", "note"]
    assert [event.kind for event in cp.event_feed(kind="note").items] == ["note"]
    assert cp.verify_audit(sid).ok
    viewer = Api(Client(create_app(cp)), cp.create_api_key("viewer").key)
    listed = viewer.get("/v1/events", params={"kind": "note"}).json()["items"]
    assert [event["payload"] for event in listed] == [{"old": 1}]
