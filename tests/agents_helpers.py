"""Shared by the OpenAI Agents SDK tests: the counting MCP server, as the SDK starts it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agents.mcp import MCPServerStdio

TOOL_SERVER = Path(__file__).parent / "mcp_tools" / "tool_server.py"


def counting_tools(log: Path) -> MCPServerStdio:
    """The test MCP server over stdio, as the Agents SDK docs teach; it logs each run to
    ``log``. Use it with ``async with`` and hand it to ``Agent(mcp_servers=[...])``."""
    return MCPServerStdio(
        name="counting-tools",
        params={
            "command": sys.executable,
            "args": [str(TOOL_SERVER)],
            "env": {"ACP_TEST_TOOL_LOG": str(log)},
        },
        client_session_timeout_seconds=30,
    )


def ran(log: Path) -> list[dict[str, Any]]:
    """What the MCP server really executed, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
