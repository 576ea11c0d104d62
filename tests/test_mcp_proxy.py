"""``acp mcp-proxy``: a real MCP client, the proxy as a process, a real MCP server below it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2  # the HTTP client the MCP SDK's transports take
import pytest
from typer.testing import CliRunner

from agent_control_plane import ControlPlane
from agent_control_plane.cli import app
from tests.mcp_helpers import (
    POLICY,
    TOOL_SERVER,
    acp_meta,
    http_client,
    http_proxy,
    proxied,
    ran,
    text,
)

pytestmark = pytest.mark.slow


def open_session(url: str, **budget: Any) -> str:
    with ControlPlane.open(url) as cp:
        session = cp.open_session(
            agent_id="agent",
            policy=POLICY,
            max_cost=budget.get("max_cost", "10"),
            max_actions=budget.get("max_actions", 100),
        )
    return str(session.id)


async def test_allowed_call_and_approval_round_trip(tmp_path: Path, core_database: str) -> None:
    url = core_database
    sid = open_session(url)
    async with proxied(tmp_path, url, "--session", sid) as client:
        allowed = await client.call_tool("echo", {"text": "hello"})
        assert not allowed.is_error
        assert text(allowed) == "hello"

        arguments = {"order": "A-1", "amount": "25"}
        first = await client.call_tool("refund", arguments)
        assert first.is_error
        ticket = acp_meta(first)["ticket_id"]
        # The agent is told the ticket and that a person must approve it, never the
        # command that approves it; the operator's log (the proxy's stderr) has that.
        assert f"ticket {ticket} waits for a person to approve it" in text(first)
        assert "acp approvals" not in text(first)
        assert "acp approvals" not in str(acp_meta(first))
        operator_log = (tmp_path / "proxy.stderr").read_text()
        assert f"acp approvals approve {ticket} --by NAME" in operator_log
        assert ran(tmp_path) == [{"tool": "echo", "text": "hello"}]

        approved = CliRunner().invoke(
            app, ["approvals", "approve", ticket, "--by", "alice", "--url", url]
        )
        assert approved.exit_code == 0, approved.output
        other = await client.call_tool("refund", {"order": "A-1", "amount": "99"})
        assert other.is_error  # the approval covers the identical call only
        second = await client.call_tool("refund", arguments)
        assert not second.is_error, text(second)
        assert text(second) == "refunded 25 on A-1"
        third = await client.call_tool("refund", arguments)
        assert third.is_error  # honoured exactly once
        assert acp_meta(third)["ticket_id"] != ticket

    assert [entry["tool"] for entry in ran(tmp_path)] == ["echo", "refund"]
    with ControlPlane.open(url) as cp:
        session = cp.get_session(sid)
        assert session.cost_used == Decimal("0.51")
        events = cp.events(sid)
        assert cp.verify_audit(session_id=sid).ok
    decisions = [e for e in events if e.kind == "decision"]
    outcomes = [e for e in events if e.kind == "outcome"]
    assert [d.outcome for d in decisions] == [
        "allowed",
        "needs_approval",
        "needs_approval",
        "allowed",
        "needs_approval",
    ]
    # Decision and outcome carry the same proxy call id and the MCP request id.
    by_call = {d.payload["context"]["call_id"]: d for d in decisions}
    assert len(by_call) == len(decisions)
    assert [o.outcome for o in outcomes] == ["succeeded", "succeeded"]
    for outcome in outcomes:
        result = outcome.payload["result"]
        decision = by_call[result["call_id"]]
        assert decision.payload["context"]["mcp_request_id"] == result["mcp_request_id"]
        assert decision.payload["context"]["tool"] == result["tool"]
    assert outcomes[1].payload["result"]["summary"] == "refunded 25 on A-1"


async def test_refusals_never_reach_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    sid = open_session(url)
    async with proxied(tmp_path, url, "--session", sid, "--policy", str(POLICY)) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert {"shell", "delete_file", "echo"} <= listed  # nothing hidden unless asked

        blocked = await client.call_tool("delete_file", {"path": "/etc/passwd"})
        assert blocked.is_error
        assert acp_meta(blocked)["reason"] == "tier.blocked:fs.delete"

        unmapped = await client.call_tool("shell", {"command": "rm -rf /"})
        assert unmapped.is_error
        assert acp_meta(unmapped)["reason"] == "tool.unmapped"
        assert "not mapped" in text(unmapped)

        # The policy gives transfer weight 0.9 (> max_weight 0.5): the agent's own
        # weight and score arguments change nothing.
        lowered = await client.call_tool(
            "transfer", {"to": "mallory", "amount": "1000", "weight": 0.0, "score": 1.0}
        )
        assert lowered.is_error
        assert acp_meta(lowered)["reason"] == "risk.max_weight"

        missing = await client.call_tool("read_file", {"file": "/srv/a"})
        assert acp_meta(missing)["reason"] == "tool.resource_argument_missing"

        control = await client.call_tool("read_file", {"path": "a\nb"})
        assert acp_meta(control)["reason"] == "input.invalid"  # refused before anything ran

        failing = await client.call_tool("fail", {"message": "disk full"})
        assert failing.is_error  # the server's own error, passed through and recorded
        assert "meta" not in failing.model_dump(exclude_none=True)

        ghost = await client.call_tool("ghost", {})
        assert ghost.is_error

    assert [entry["tool"] for entry in ran(tmp_path)] == ["fail"]
    with ControlPlane.open(url) as cp:
        events = cp.events(sid)
    refused = [e.payload for e in events if e.kind == "mcp.refused"]
    assert [(p["tool"], p["reason"]) for p in refused] == [
        ("shell", "tool.unmapped"),
        ("read_file", "tool.resource_argument_missing"),
    ]
    transfer = next(e for e in events if e.kind == "decision" and e.action == "bank.transfer")
    assert (transfer.payload["weight"], transfer.payload["score"]) == (0.9, 0.2)
    assert transfer.payload["args"]["weight"] == 0.0  # recorded, not believed
    outcomes = [(e.action, e.outcome) for e in events if e.kind == "outcome"]
    assert outcomes == [("demo.fail", "failed"), ("demo.echo", "failed")]


async def test_hidden_tools_budget_exhaustion_and_kill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url):
        pass  # migrate: the proxy only verifies
    options = ["--policy", str(POLICY), "--agent-id", "bot-7", "--max-cost", "0.02"]
    async with proxied(tmp_path, url, *options, "--hide-blocked") as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert listed == {"echo", "read_file", "refund", "transfer", "fail"}

        with ControlPlane.open(url) as cp:
            (session,) = cp.list_sessions(agent_id="bot-7").items
        for word in ("one", "two"):
            assert not (await client.call_tool("echo", {"text": word})).is_error
        exhausted = await client.call_tool("echo", {"text": "three"})
        assert exhausted.is_error
        assert acp_meta(exhausted)["reason"].startswith("budget.")

        with ControlPlane.open(url) as cp:
            cp.kill_session(session.id, reason="runaway")
        killed = await client.call_tool("read_file", {"path": "/srv/a"})
        assert killed.is_error
        assert acp_meta(killed)["reason"] == "session.killed"

    assert [entry["text"] for entry in ran(tmp_path)] == ["one", "two"]
    with ControlPlane.open(url) as cp:
        assert cp.get_session(session.id).status == "aborted"


async def test_a_session_the_proxy_opened_is_completed_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url):
        pass
    async with proxied(tmp_path, url, "--policy", str(POLICY), "--agent-id", "bot-8") as client:
        assert not (await client.call_tool("echo", {"text": "hi"})).is_error
    with ControlPlane.open(url) as cp:
        (session,) = cp.list_sessions(agent_id="bot-8").items
    assert session.status == "completed"
    assert f"session {session.id}" in (tmp_path / "proxy.stderr").read_text()


@asynccontextmanager
async def _http_proxy(tmp_path: Path, url: str, *options: str) -> AsyncIterator[str]:
    """A proxy serving streamable HTTP for a new session under the test policy."""
    async with http_proxy(tmp_path, url, "--session", open_session(url), *options) as address:
        yield address


async def test_streamable_http_variant_takes_calls_only_with_an_api_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url) as cp:
        agent_key = cp.create_api_key("agent", name="tools", agents=["agent"]).key
        viewer_key = cp.create_api_key("viewer").key
        other_tenant = cp.create_api_key("agent", tenant="globex", agents=["*"]).key
        # The proxy's session is agent "agent"'s: a key for "agent-2" is not it.
        other_agent = cp.create_api_key("agent", agents=["agent-2", "agent?"]).key
    async with _http_proxy(tmp_path, url) as address:
        async with http_client(address, agent_key) as client:
            assert not (await client.call_tool("echo", {"text": "over http"})).is_error
            refused = await client.call_tool("delete_file", {"path": "/x"})
            assert acp_meta(refused)["reason"] == "tier.blocked:fs.delete"
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            assert (await http.post(address, json=hello)).status_code == 401
            for key, status in (
                (f"{agent_key}x", 401),
                (viewer_key, 403),
                (other_tenant, 403),
                (other_agent, 403),
            ):
                answer = await http.post(
                    address, json=hello, headers={"Authorization": f"Bearer {key}"}
                )
                assert answer.status_code == status, (key, answer.text)
    assert ran(tmp_path) == [{"tool": "echo", "text": "over http"}]


async def test_streamable_http_variant_anonymous_on_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    async with (
        _http_proxy(tmp_path, url, "--allow-anonymous") as address,
        http_client(address, None) as client,
    ):
        assert not (await client.call_tool("echo", {"text": "anyone"})).is_error
    assert ran(tmp_path) == [{"tool": "echo", "text": "anyone"}]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--listen", "nowhere"], "HOST:PORT"),
        (["--max-cost", "lots"], "max-cost"),
        ([], "--policy FILE"),
        (["--policy", "missing.yaml"], "cannot read policy file"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, options: list[str], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url):
        pass
    result = CliRunner().invoke(
        app, ["mcp-proxy", "--url", url, *options, "--", sys.executable, str(TOOL_SERVER)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_session_under_another_policy_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url) as cp:
        sid = cp.open_session(agent_id="a", policy={"name": "other"}, max_cost=1, max_actions=1).id
    result = CliRunner().invoke(
        app,
        ["mcp-proxy", "--url", url, "--session", str(sid), "--policy", str(POLICY), "--", "x"],
    )
    assert result.exit_code == 2
    assert "differs" in result.output


def test_a_database_without_acp_tables_exits_3(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(
        app, ["mcp-proxy", "--url", url, "--policy", str(POLICY), "--", sys.executable, "x"]
    )
    assert result.exit_code == 3, result.output
    assert "acp db upgrade" in result.output
