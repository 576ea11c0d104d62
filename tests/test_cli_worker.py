"""``acp worker``: one run with --once (output and exit code), and a loop that stops on
SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agent_control_plane import ControlPlane
from agent_control_plane.cli import app
from tests.databases import TestDatabase
from tests.maintenance_helpers import (
    TINY,
    open_session,
    request_approvals,
    wait_past,
    webhook_server,
)

runner = CliRunner()


def acp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_worker_once_json_reports_each_step_and_exits_by_outcome(
    database: TestDatabase,
) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string) as cp:
        sid = open_session(cp)
        tickets = request_approvals(cp, sid, 2)
    wait_past(TINY)

    code, output = acp("worker", "--once", "--json", "--escalate-after", "1ms", *url)
    assert code == 0, output
    report = json.loads(output)
    assert report["tickets_escalated"] == 2
    assert report["ok"] is True
    assert {"ran_at", "tickets_expired", "holds_released", "events_pruned"} <= report.keys()

    with ControlPlane.open(database.url_string) as cp:
        late = cp.govern(sid, "issue_refund", args={"n": "late"}, cost="0").ticket_id
        assert late is not None
        assert [cp.get_ticket(t).escalated_at is not None for t in tickets] == [True, True]
    wait_past(TINY)
    with webhook_server(status=503) as hook:
        code, output = acp(
            "worker", "--once", "--json", "--escalate-after", "1ms", "--webhook-url", hook.url, *url
        )
    assert code == 1
    assert json.loads(output)["webhook_failures"] == 1

    code, output = acp("worker", "--once", "--escalate-after", "1ms", *url)
    assert code == 0
    assert "1 tickets escalated" in output

    code, output = acp("worker", "--once", "--on-stale", "explode", *url)
    assert code == 2
    assert "on_stale" in output


def test_worker_refuses_bad_settings_before_connecting(tmp_path: Path) -> None:
    url = ["--url", f"sqlite:///{tmp_path / 'never.db'}"]
    assert acp("worker", "--once", "--heartbeat-timeout", "soon", *url)[0] == 2
    assert acp("worker", "--once", "--interval", "0", *url)[0] == 2
    assert not (tmp_path / "never.db").exists()


def test_worker_loop_runs_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    ControlPlane.open(url).close()
    acp_bin = Path(sys.executable).with_name("acp")
    process = subprocess.Popen(
        [str(acp_bin), "worker", "--interval", "0.1", "--json", "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ACP_DATABASE_URL": ""},
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    reports = [json.loads(line) for line in [*lines, *stdout.splitlines()]]
    assert len(reports) >= 3
    assert all(report["ok"] for report in reports)
