"""``acp mcp-proxy`` over stdio, message by message: a raw JSON-RPC client on one side, a
real MCP server on the other. What the proxy does not govern it passes on as the server
said it; what it does not offer never reaches the server."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from mcp import Client, StdioServerParameters

from agent_control_plane import ControlPlane
from tests.mcp_helpers import PROXY, TOOLS, ran, text

pytestmark = pytest.mark.slow

POLICY = TOOLS / "relay_policy.yaml"
SERVER = [sys.executable, str(TOOLS / "notifying_server.py")]
CLIENT_INFO = {"name": "raw", "version": "1"}


class Wire:
    """A JSON-RPC peer on a child process's stdin and stdout, one message per line."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.buffer = b""
        self.notifications: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        line = message if isinstance(message, str) else json.dumps(message)
        assert self.process.stdin is not None
        await self.process.stdin.send(line.encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            self.buffer += await self.process.stdout.receive()
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def request(
        self, request_id: str | int, method: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a request; its reply, once every message before it is in ``notifications``."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        with anyio.fail_after(60):
            while True:
                reply = await self.receive()
                if "method" in reply:
                    self.notifications.append(reply)
                    continue
                assert reply["id"] == request_id, reply
                return reply

    async def initialize(self, version: str = "2025-06-18") -> dict[str, Any]:
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO}
        reply = await self.request("init", "initialize", params)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result: dict[str, Any] = reply["result"]
        return result


@asynccontextmanager
async def wire(tmp_path: Path, command: list[str]) -> AsyncIterator[Wire]:
    env = {**os.environ, "ACP_TEST_TOOL_LOG": str(tmp_path / "ran.jsonl")}
    with (tmp_path / "stderr.log").open("a") as errlog:
        process = await anyio.open_process(command, env=env, stderr=errlog)
    async with process:
        try:
            yield Wire(process)
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.fail_after(30):
                await process.wait()


def proxy(url: str, agent_id: str) -> list[str]:
    return [*PROXY, "--url", url, "--policy", str(POLICY), "--agent-id", agent_id, "--", *SERVER]


def outcomes(url: str, agent_id: str) -> list[tuple[str | None, str | None]]:
    with ControlPlane.open(url) as cp:
        (session,) = cp.list_sessions(agent_id=agent_id).items
        events = cp.events(session.id)
        assert cp.verify_audit(session_id=session.id).ok
    return [(e.action, e.outcome) for e in events if e.kind == "outcome"]


async def test_replies_pass_through_as_the_server_sent_them(
    tmp_path: Path, core_database: str
) -> None:
    url = core_database
    with ControlPlane.open(url):
        pass  # the proxy only verifies the schema
    async with wire(tmp_path, SERVER) as direct, wire(tmp_path, proxy(url, "wire")) as proxied:
        await direct.initialize()
        await proxied.initialize()
        listed = await proxied.request(1, "tools/list")
        assert listed["result"] == (await direct.request(1, "tools/list"))["result"]
        # Every kind of content block, structured content beyond 64-bit integers, the
        # server's own _meta: as the server sent them, whatever the request's id.
        for request_id in ("call-a", 2, 0):
            params = {"name": "rich", "arguments": {}}
            expected = await direct.request(request_id, "tools/call", params)
            reply = await proxied.request(request_id, "tools/call", params)
            assert reply == expected
            assert reply["result"]["structuredContent"]["n"] == 12345678901234567890
    assert outcomes(url, "wire") == [("demo.rich", "succeeded")] * 3


async def test_only_what_the_proxy_offers_reaches_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url):
        pass
    # The proxy takes a URL naming an asyncio driver as well.
    async_url = f"sqlite+aiosqlite:///{tmp_path / 'acp.db'}"
    async with wire(tmp_path, proxy(async_url, "offers")) as client:
        early = await client.request(1, "tools/call", {"name": "work", "arguments": {}})
        assert early["error"]["code"] == -32602  # not initialized yet, as the SDK answers

        initialized = await client.initialize("2025-03-26")
        assert initialized["protocolVersion"] == "2025-03-26"
        assert initialized["serverInfo"]["name"] == "acp-proxy:notifying"
        assert initialized["capabilities"] == {"logging": {}, "tools": {"listChanged": True}}
        assert (await client.request(2, "ping"))["result"] == {}

        complete = {
            "ref": {"type": "ref/prompt", "name": "p"},
            "argument": {"name": "a", "value": ""},
        }
        for method, params in (
            ("resources/list", {}),
            ("prompts/list", {}),
            ("completion/complete", complete),
            ("x/y", {}),
        ):
            refused = await client.request(method, method, params)
            assert refused["error"]["code"] == -32601, refused  # method not found
        malformed: list[dict[str, Any]] = [
            {"name": "work", "arguments": "x"},
            {"arguments": {}},
            {"name": 3},
        ]
        for wrong in malformed:
            bad = await client.request("bad", "tools/call", wrong)
            assert bad["error"]["code"] == -32602, bad

        # Lines that are not messages are dropped; the connection goes on.
        await client.send("not json")
        await client.send("[1, 2]")
        assert (await client.request(3, "ping"))["result"] == {}

        # Progress reaches the client under the token the client chose.
        meta = {"progressToken": "tok-1"}
        worked = await client.request(4, "tools/call", {"name": "work", "_meta": meta})
        assert worked["result"]["content"] == [{"type": "text", "text": "work"}]
        progress = [n["params"] for n in client.notifications if "progress" in n["method"]]
        assert progress == [
            {"progressToken": "tok-1", "progress": p, "total": 3.0, "message": f"step {p}"}
            for p in (1, 2, 3)
        ]

        # The server's own request (sampling) is answered by the proxy: not offered.
        sampled = await client.request(5, "tools/call", {"name": "sample", "arguments": {}})
        assert sampled["result"]["content"][0]["text"] == "Sampling not supported"

    assert ran(tmp_path) == [
        {"tool": "work"},
        {"tool": "sample"},
        {"sampling": "Sampling not supported"},
    ]
    assert outcomes(url, "offers") == [("demo.work", "succeeded"), ("demo.sample", "succeeded")]


async def test_a_client_of_the_2026_protocol_is_served_by_the_sdk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    with ControlPlane.open(url):
        pass
    command = proxy(url, "modern")
    parameters = StdioServerParameters(
        command=command[0],
        args=command[1:],
        env={**os.environ, "ACP_TEST_TOOL_LOG": str(tmp_path / "ran.jsonl")},
    )
    async with Client(parameters) as client:  # probes server/discover first
        assert client.protocol_version == "2026-07-28"
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"work", "rich"} <= tools
        assert text(await client.call_tool("work", {})) == "work"
    assert ran(tmp_path) == [{"tool": "work"}]
    assert outcomes(url, "modern") == [("demo.work", "succeeded")]
