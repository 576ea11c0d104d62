"""A real MCP server that talks back: progress, log messages, a changed tool list, and a
call that waits until it is cancelled. Each thing it does is appended to the file named
by ACP_TEST_TOOL_LOG (one JSON line), so a test sees what the server itself saw.

    python notifying_server.py [--exit-at-start CODE]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(name=name, description=name, input_schema={"type": "object"})
    for name in ("work", "wait", "change", "die")
]


def _log(**entry: Any) -> None:
    with open(os.environ["ACP_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(
    ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    _log(tool=params.name)
    if params.name == "work":
        for step in (1, 2, 3):
            await ctx.session.report_progress(step, 3, f"step {step}")
        message = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level="info", data="worked", logger="t")
        )
        await ctx.session.send_notification(message)
    elif params.name == "wait":
        try:
            await anyio.sleep(120)
        except anyio.get_cancelled_exc_class():
            _log(cancelled="wait")
            raise
    elif params.name == "change":
        await ctx.session.send_tool_list_changed()
    elif params.name == "die":
        print("giving up: out of coffee", file=sys.stderr, flush=True)
        os._exit(5)
    return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])


async def set_level(
    ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
) -> types.EmptyResult:
    _log(level=params.level)
    return types.EmptyResult()


async def main() -> None:
    server = Server("notifying", on_list_tools=list_tools, on_call_tool=call_tool)
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--exit-at-start"]:
        print("cannot open the config file /etc/notifying.toml", file=sys.stderr, flush=True)
        sys.exit(int(sys.argv[2]))
    anyio.run(main)
