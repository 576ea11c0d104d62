"""``acp mcp-proxy`` as a process between a real MCP client and a real MCP server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2  # the HTTP client the MCP SDK's transports take
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

HERE = Path(__file__).parent
TOOLS = HERE / "mcp_tools"
POLICY = TOOLS / "policy.yaml"
TOOL_SERVER = TOOLS / "tool_server.py"
PROXY = [sys.executable, "-m", "agent_control_plane.cli", "mcp-proxy"]


@asynccontextmanager
async def proxied(
    tmp_path: Path,
    url: str,
    *options: str,
    server: list[str] | None = None,
    env: dict[str, str] | None = None,
    **session_options: Any,
) -> AsyncIterator[ClientSession]:
    """An initialized client session with ``acp mcp-proxy`` (stdio) in front of ``server``
    (default: the counting tool server)."""
    command = server or [sys.executable, str(TOOL_SERVER)]
    parameters = StdioServerParameters(
        command=PROXY[0],
        args=[*PROXY[1:], "--url", url, *options, "--", *command],
        # The whole environment, as for the HTTP proxy: the SDK would pass only a few
        # variables, and the proxy must import the code under test (PYTHONPATH).
        env={**os.environ, "ACP_TEST_TOOL_LOG": str(tmp_path / "ran.jsonl"), **(env or {})},
    )
    with (tmp_path / "proxy.stderr").open("a") as errlog:
        async with (
            stdio_client(parameters, errlog=errlog) as (read, write),
            ClientSession(read, write, **session_options) as session,
        ):
            await session.initialize()
            yield session


def ran(tmp_path: Path) -> list[dict[str, Any]]:
    """What the counting tool server executed, in order."""
    log = tmp_path / "ran.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def text(result: types.CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, types.TextContent))


def acp_meta(result: types.CallToolResult) -> dict[str, Any]:
    assert result.meta is not None
    meta: dict[str, Any] = result.meta["agent_control_plane"]
    return meta


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the proxy exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


@asynccontextmanager
async def http_proxy(
    tmp_path: Path,
    url: str,
    *options: str,
    server: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """A proxy serving streamable HTTP in front of ``server``; yields its /mcp address."""
    port = free_port()
    command = [*PROXY, "--url", url, "--listen", f"127.0.0.1:{port}", *options]
    environment = {
        **os.environ,
        "ACP_TEST_TOOL_LOG": str(tmp_path / "ran.jsonl"),
        **(env or {}),
    }
    with (tmp_path / "proxy.stderr").open("w") as errlog:
        process = subprocess.Popen(
            [*command, "--", *(server or [sys.executable, str(TOOL_SERVER)])],
            env=environment,
            stderr=errlog,
        )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "proxy.stderr").read_text()


@asynccontextmanager
async def http_client(
    address: str, key: str | None, **session_options: Any
) -> AsyncIterator[ClientSession]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(address, http_client=http) as (read, write),
        ClientSession(read, write, **session_options) as client,
    ):
        await client.initialize()
        yield client


@asynccontextmanager
async def connected(
    transport: str,
    tmp_path: Path,
    url: str,
    *options: str,
    server: list[str],
    **session_options: Any,
) -> AsyncIterator[ClientSession]:
    """A client of the proxy in front of ``server``, over ``transport``: "stdio", or "http"
    (a proxy that takes calls without an API key)."""
    if transport == "stdio":
        async with proxied(tmp_path, url, *options, server=server, **session_options) as client:
            yield client
    else:
        async with (
            http_proxy(tmp_path, url, *options, "--allow-anonymous", server=server) as address,
            http_client(address, None, **session_options) as client,
        ):
            yield client
