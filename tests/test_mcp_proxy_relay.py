"""``acp mcp-proxy`` between a real MCP client and a server that talks back: notifications
and cancellations pass through, and a server that fails is reported in one line."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from agent_control_plane import ControlPlane
from tests.mcp_helpers import (
    PROXY,
    TOOLS,
    connected,
    free_port,
    http_client,
    ran,
    text,
    wait_for_port,
)

pytestmark = pytest.mark.slow

POLICY = TOOLS / "relay_policy.yaml"
SERVER = [sys.executable, str(TOOLS / "notifying_server.py")]


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    with anyio.move_on_after(timeout):
        while not check():
            await anyio.sleep(0.05)
    assert check(), f"never happened: {what}"


def _migrated(url: str) -> None:
    with ControlPlane.open(url):
        pass  # the proxy only verifies the schema


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_notifications_and_cancellations_pass_through(
    tmp_path: Path, core_database: str, transport: str
) -> None:
    url = core_database
    _migrated(url)
    notifications: list[types.ServerNotification] = []
    logs: list[types.LoggingMessageNotificationParams] = []
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_message(message: types.ServerNotification | Exception) -> None:
        assert not isinstance(message, Exception), message
        notifications.append(message)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    options = ["--policy", str(POLICY), "--agent-id", "relay"]
    async with connected(
        transport,
        tmp_path,
        url,
        *options,
        server=SERVER,
        message_handler=on_message,
        logging_callback=on_log,
    ) as client:
        capabilities = client.server_capabilities
        assert capabilities is not None
        assert capabilities.tools is not None
        assert capabilities.tools.list_changed  # the real server's, passed on
        assert capabilities.logging is not None
        # The 2025 protocol's logging/setLevel (ClientSession's helper warns of its 2026
        # deprecation), passed on to the server.
        level = types.SetLevelRequest(params=types.SetLevelRequestParams(level="debug"))
        await client.send_request(level, types.EmptyResult)

        worked = await client.call_tool("work", {}, progress_callback=on_progress)
        assert text(worked) == "work"
        await _eventually(lambda: len(reports) == 3, "three progress reports")
        assert reports == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
        await _eventually(lambda: bool(logs), "the server's log message")
        assert (logs[0].level, logs[0].data, logs[0].logger) == ("info", "worked", "t")

        await client.call_tool("change", {})
        await _eventually(
            lambda: any(isinstance(n, types.ToolListChangedNotification) for n in notifications),
            "tools/list_changed",
        )

        async with anyio.create_task_group() as calls:
            calls.start_soon(client.call_tool, "wait", {})
            await _eventually(lambda: {"tool": "wait"} in ran(tmp_path), "the wait call running")
            calls.cancel_scope.cancel()
        await _eventually(lambda: {"cancelled": "wait"} in ran(tmp_path), "the server cancelled")
        # The proxy still serves after a cancelled call.
        assert text(await client.call_tool("work", {})) == "work"

    assert ran(tmp_path)[0] == {"level": "debug"}
    with ControlPlane.open(url) as cp:
        (session,) = cp.list_sessions(agent_id="relay").items
        outcomes = [(e.action, e.outcome) for e in cp.events(session.id) if e.kind == "outcome"]
        assert cp.verify_audit(session_id=session.id).ok
    assert outcomes == [
        ("demo.work", "succeeded"),
        ("demo.change", "succeeded"),
        ("demo.wait", "cancelled"),
        ("demo.work", "succeeded"),
    ]


def _session_of(url: str, agent_id: str) -> Any:
    with ControlPlane.open(url) as cp:
        (session,) = cp.list_sessions(agent_id=agent_id).items
        events = cp.events(session.id)
    return session, events


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (
            [*SERVER, "--exit-at-start", "3"],
            "did not start (it never answered initialize) and exited with code 3; its stderr "
            "ended with: cannot open the config file /etc/notifying.toml",
        ),
        (
            ["/nonexistent/mcp-server", "--flag"],
            "could not be started: No such file or directory",
        ),
    ],
)
def test_a_server_that_does_not_start_is_one_line_and_ends_the_session(
    tmp_path: Path, core_database: str, server: list[str], said: str
) -> None:
    url = core_database
    _migrated(url)
    options = ["--url", url, "--policy", str(POLICY), "--agent-id", "doomed"]
    done = subprocess.run(
        [*PROXY, *options, "--", *server],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""  # stdout is the MCP wire: nothing but messages
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line == f"error: the MCP server `{shlex.join(server)}` {said}"
    session, events = _session_of(url, "doomed")
    assert session.status == "completed"
    assert events[-1].kind == "session.completed"
    assert events[-1].reason == "mcp.server_failed"


async def test_a_server_that_stops_while_serving_stops_the_proxy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    _migrated(url)
    port = free_port()
    command = [
        *PROXY,
        *("--url", url, "--policy", str(POLICY), "--agent-id", "orphan"),
        *("--listen", f"127.0.0.1:{port}", "--allow-anonymous", "--", *SERVER),
    ]
    env = {**os.environ, "ACP_TEST_TOOL_LOG": str(tmp_path / "ran.jsonl")}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process)
        async with http_client(f"http://127.0.0.1:{port}/mcp", None) as client:
            # The server died under the call: the proxy answers with its error.
            with pytest.raises(MCPError, match="Connection closed"):
                await client.call_tool("die", {})
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert process.returncode == 4, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: the MCP server `{shlex.join(SERVER)}` stopped while the proxy was serving and "
        "exited with code 5; its stderr ended with: giving up: out of coffee"
    )
    session, events = _session_of(url, "orphan")
    assert session.status == "completed"
    assert events[-1].reason == "mcp.server_failed"
    # The call that took the server down is recorded as failed.
    assert [(e.action, e.outcome) for e in events if e.kind == "outcome"] == [
        ("demo.die", "failed")
    ]
