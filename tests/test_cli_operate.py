"""Operator commands: sessions, approvals, kill switch and events, against real databases."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent_control_plane import ControlPlane
from agent_control_plane.cli import app
from tests.databases import TestDatabase

runner = CliRunner()
POLICY = {
    "name": "ops",
    "tiers": {"always_approve": ["refund"], "auto_approve": ["read"]},
    "risk": {},
}


def acp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_an_operator_approves_kills_and_reads_the_trail(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string) as cp:
        sid = cp.open_session(
            agent_id="bot", tenant="acme", policy=POLICY, max_cost=1, max_actions=10
        ).id
        other = cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=10).id
        ticket = cp.govern(sid, "refund", args={"amount": 5}).ticket_id
    assert ticket is not None

    code, output = acp("sessions", "list", "--json", *url)
    assert code == 0
    assert {item["id"] for item in json.loads(output)} == {str(sid), str(other)}
    code, output = acp("sessions", "show", str(sid), "--json", *url)
    assert (code, json.loads(output)["tenant"]) == (0, "acme")

    code, output = acp("approvals", "list", "--json", *url)
    assert [item["id"] for item in json.loads(output)] == [str(ticket)]
    code, output = acp("approvals", "approve", str(ticket), "--by", "alice", *url)
    assert (code, f"approved {ticket} (once) by alice" in output) == (0, True)
    code, output = acp("approvals", "deny", str(ticket), "--by", "bob", "--reason", "late", *url)
    assert code == 1
    assert "already approved" in output
    with ControlPlane.open(database.url_string) as cp:
        assert cp.govern(sid, "refund", args={"amount": 5}).allowed

    assert acp("kill", "all", *url)[0] == 2  # needs --yes
    code, output = acp("kill", "agent", "bot", "--reason", "incident", "--by", "oncall", *url)
    assert (code, "stopped 2 session(s)" in output) == (0, True)
    assert "stopped 0 session(s)" in acp("kill", "session", str(sid), *url)[1]
    code, output = acp("kills", "--json", *url)
    assert [
        (k["scope"], k["agent_id"], k["reason"], k["killed_by"]) for k in json.loads(output)
    ] == [("agent", "bot", "incident", "oncall")]
    assert "agent 'bot'" in acp("kills", *url)[1]
    assert acp("kill", "session", str(sid), "--lift", *url)[0] == 2  # sessions never reopen
    code, output = acp("kill", "agent", "bot", "--lift", *url)
    assert (code, "lifted the kill" in output) == (0, True)
    assert "nothing to lift" in acp("kill", "agent", "bot", "--lift", *url)[1]
    assert json.loads(acp("kills", "--json", *url)[1]) == []

    code, output = acp("events", "tail", "--session", str(sid), "--json", *url)
    kinds = [json.loads(line)["kind"] for line in output.splitlines()]
    assert kinds == [
        "session.opened",
        "decision",
        "approval.approved",
        "decision",
        "session.killed",
    ]
    code, output = acp("events", "tail", *url)
    assert code == 0
    assert output.count("session.killed") == 2
    assert acp("audit", "verify", *url)[0] == 0
