"""The command line for scripts: --json everywhere, documented exit codes, events tail --follow,
and the audit progress bar, against real databases."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.cli import app
from agent_control_plane.cli.common import ExitCode
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.databases import TestDatabase

runner = CliRunner()
POLICY = {
    "name": "ops",
    "tiers": {"always_approve": ["refund"], "auto_approve": ["read"]},
    "risk": {},
}
CLI_PAGE = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md").read_text()


def acp(*args: str) -> Result:
    return runner.invoke(app, list(args))


def acp_json(*args: str) -> Any:
    result = acp(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_reporting_command_speaks_json(database: TestDatabase, tmp_path: Path) -> None:
    url = ["--url", database.url_string]
    assert acp("db", "upgrade", *url).exit_code == 0
    with ControlPlane.open(database.url_string) as cp:
        sid = cp.open_session(
            agent_id="bot", tenant="acme", policy=POLICY, max_cost=1, max_actions=9
        ).id
        first = cp.govern(sid, "refund", args={"n": 1}).ticket_id
        second = cp.govern(sid, "refund", args={"n": 2}).ticket_id
        cp.set_prices({"small": {"input": "1", "output": "2"}})
        cp.set_token_budget(Identity(org="acme"), "day", max_tokens=1000)
        cp.record_usage(Identity(org="acme", user="al"), "small", TokenUsage(10, 5))

    assert acp_json("db", "current", *url)["up_to_date"] is True
    assert acp_json("db", "history")[-1]["revision"] == "acp_0001"
    assert acp_json("db", "check", *url) == {"ok": True, "differences": []}
    policy_file = tmp_path / "ops.json"
    policy_file.write_text(json.dumps(POLICY))
    assert acp_json("policy", "validate", str(policy_file))["name"] == "ops"
    assert acp_json("policy", "apply", str(policy_file), *url)["version"] == 1

    (listed,) = acp_json("sessions", "list", *url)
    assert (listed["id"], listed["actions_used"]) == (str(sid), 0)
    assert acp_json("sessions", "show", str(sid), *url)["tenant"] == "acme"
    tickets = acp_json("approvals", "list", *url)
    assert [t["id"] for t in tickets] == [str(first), str(second)]
    approved = acp_json("approvals", "approve", str(first), "--by", "alice", *url)
    assert (approved["status"], approved["decided_by"]) == ("approved", "alice")
    denied = acp_json("approvals", "deny", str(second), "--by", "bob", "--reason", "no", *url)
    assert denied["status"] == "denied"

    (budget,) = acp_json("budgets", *url)
    assert (budget["used"]["tokens"], budget["remaining"]["tokens"]) == (15, 985)
    (usage,) = acp_json("tokens", "report", "--group-by", "user,model", *url)
    assert (usage["user"], usage["model"], usage["total_tokens"]) == ("al", "small", 15)
    report = acp("tokens", "report", "--group-by", "user", "--csv", *url)
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert [(r["user"], r["total_tokens"]) for r in rows] == [("al", "15")]

    assert acp_json("kill", "session", str(sid), *url) == {
        "scope": "session",
        "target": str(sid),
        "stopped": 1,
    }
    verified = acp_json("audit", "verify", *url)
    assert (verified["ok"], verified["sessions_checked"]) == (True, 1)
    tail = acp("events", "tail", "--json", *url)
    kinds = [json.loads(line)["kind"] for line in tail.stdout.splitlines()]
    assert kinds[0] == "session.opened"
    assert kinds[-1] == "session.killed"


def test_exit_codes_are_the_documented_ones(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    # 3: a database whose ACP schema is not current, with the command that fixes it.
    result = acp("sessions", "list", *url)
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "acp db upgrade --url" in result.stderr
    result = acp("db", "check", *url)
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert acp("db", "upgrade", *url).exit_code == ExitCode.OK
    # 1: not found, or someone else decided first.
    result = acp("sessions", "show", str(uuid.uuid4()), *url)
    assert result.exit_code == ExitCode.FAILED
    assert "no session" in result.stderr.lower()
    assert acp("approvals", "approve", str(uuid.uuid4()), "--by", "a", *url).exit_code == 1
    # 2: bad arguments, before anything is done.
    result = acp("sessions", "show", "not-a-session-id", *url)
    assert result.exit_code == ExitCode.USAGE
    assert acp("events", "tail", "--limit", "0", *url).exit_code == ExitCode.USAGE
    assert acp("events", "tail", "--until-idle", "1", *url).exit_code == ExitCode.USAGE
    assert acp("events", "tail", "--after", "x", *url).exit_code == ExitCode.USAGE
    assert acp("sessions", "list", "--no-such-option", *url).exit_code == ExitCode.USAGE
    assert acp("sessions", "list", "--status", "bogus", *url).exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://nobody@127.0.0.1:1/none", "mysql+pymysql://x@127.0.0.1:1/y"],
)
@pytest.mark.parametrize("command", [["sessions", "list"], ["db", "current"], ["audit", "verify"]])
def test_an_unreachable_database_exits_3(url: str, command: list[str]) -> None:
    result = acp(*command, "--url", url)
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "database unavailable" in result.stderr
    assert "Traceback" not in result.output


def test_an_unopenable_sqlite_file_exits_3(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'acp.db'}"
    assert acp("events", "tail", "--url", url).exit_code == ExitCode.UNAVAILABLE


def test_exit_codes_are_documented_in_the_help_and_the_cli_reference() -> None:
    help_text = acp("--help").output
    for code in ExitCode:
        assert f"{code.value} {code.meaning.split()[0]}" in " ".join(help_text.split())
        assert f"| {code.value} | {code.meaning} |" in CLI_PAGE, code


def test_events_tail_follows_the_feed_until_max_events(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string) as cp:
        sid = cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=9).id
        started = threading.Event()

        def emit_later() -> None:
            started.wait(10)
            for n in range(4):
                time.sleep(0.15)
                cp.emit(sid, "app.note", {"n": n})

        emitter = threading.Thread(target=emit_later)
        emitter.start()
        started.set()
        result = acp(
            "events", "tail", "--follow", "--interval", "0.05", "--max-events", "5", "--json", *url
        )
        emitter.join()
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in events] == [
        "session.opened",
        "app.note",
        "app.note",
        "app.note",
        "app.note",
    ]
    assert [e["payload"]["n"] for e in events[1:]] == [0, 1, 2, 3]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)

    # Resume after the last id seen: only what came later.
    with ControlPlane.open(database.url_string) as cp:
        cp.emit(sid, "app.note", {"n": 4})
    later = acp("events", "tail", "--after", str(ids[-1]), "--json", *url)
    assert [json.loads(line)["payload"]["n"] for line in later.stdout.splitlines()] == [4]


def test_events_tail_follow_stops_when_idle(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string) as cp:
        sid = cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=9).id
        cp.emit(sid, "app.note", {"n": 1})
    started = time.monotonic()
    result = acp(
        "events",
        "tail",
        "--follow",
        "--until-idle",
        "0.3",
        "--interval",
        "0.05",
        "--kind",
        "app.note",
        *url,
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.3
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert "app.note" in lines[0]
    session_only = acp(
        "events", "tail", "--session", str(sid), "--kind", "app.note", "--json", *url
    )
    assert [json.loads(line)["seq"] for line in session_only.stdout.splitlines()] == [2]


def test_audit_verify_reports_progress(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    seen: list[tuple[int, int]] = []
    with ControlPlane.open(database.url_string) as cp:
        for _ in range(3):
            cp.open_session(agent_id="bot", policy=POLICY, max_cost=1, max_actions=9)
        report = cp.verify_audit(progress=lambda done, total: seen.append((done, total)))
    # Each session once, on every database (MariaDB's UUID order is not Python's).
    assert (report.ok, report.sessions_checked, report.events_checked) == (True, 3, 3)
    assert seen == [(0, 3), (3, 3)]
    result = acp("audit", "verify", "--progress", "--json", *url)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["sessions_checked"] == 3
    assert "verifying sessions" in result.stderr
    assert "3/3" in result.stderr
    quiet = acp("audit", "verify", *url)  # not a terminal: no bar unless asked
    assert "verifying sessions" not in quiet.output


async def test_async_verify_audit_reports_progress(
    async_control_plane: AsyncControlPlane,
) -> None:
    seen: list[tuple[int, int]] = []
    session = await async_control_plane.open_session(
        agent_id="bot", policy=POLICY, max_cost=1, max_actions=9
    )
    report = await async_control_plane.verify_audit(
        session.id, progress=lambda done, total: seen.append((done, total))
    )
    assert report.ok
    assert seen == [(0, 1), (1, 1)]
