"""Shared by the Claude Agent SDK tests: the SDK driven against a stand-in CLI.

The real CLI needs the network and an account; ``tests/claude_cli/fake_claude.py`` speaks
the SDK's control protocol instead, so the SDK's own code carries each hook,
``can_use_tool`` answer and MCP tool call, and SDK MCP tools run in this process.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    ToolResultBlock,
    UserMessage,
)

FAKE_CLI = Path(__file__).parent / "claude_cli" / "fake_claude.py"


def fake_cli(folder: Path, calls: Sequence[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """ClaudeAgentOptions fields that run the stand-in CLI with ``calls`` (tool, id, input)."""
    script = folder / "claude-script.json"
    script.write_text(json.dumps([{"tool": t, "id": i, "input": a} for t, i, a in calls]))
    launcher = folder / "claude"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    return {"cli_path": str(launcher), "env": {"FAKE_CLAUDE_SCRIPT": str(script)}}


async def run(options: ClaudeAgentOptions, prompt: str = "go") -> dict[str, ToolResultBlock]:
    """Run one prompt; return what the model was shown for each tool call, by its id."""
    shown: dict[str, ToolResultBlock] = {}
    async with ClaudeSDKClient(options=options) as client:
        await client.query(prompt)
        async for message in client.receive_response():
            if isinstance(message, UserMessage) and isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, ToolResultBlock):
                        shown[block.tool_use_id] = block
            if isinstance(message, ResultMessage):
                break
    return shown
