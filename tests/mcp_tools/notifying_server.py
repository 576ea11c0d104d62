"""A real MCP server that talks back: progress, log messages, a changed tool list, a call
that waits until it is cancelled, a result with every kind of field, and a request of its
own to the client (sampling). Each thing it does is appended to the file named
by ACP_TEST_TOOL_LOG (one JSON line), so a test sees what the server itself saw.

    python notifying_server.py [--exit-at-start CODE]
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

TOOLS = [
    types.Tool(name=name, description=name, input_schema={"type": "object"})
    for name in ("work", "wait", "change", "die", "rich", "sample")
]
# What "rich" answers: blocks of several kinds, structured content and the server's _meta.
RICH = types.CallToolResult(
    content=[
        types.TextContent(type="text", text="héllo ✓", annotations=types.Annotations(priority=0.5)),
        types.ImageContent(type="image", data="aGk=", mime_type="image/png"),
        types.EmbeddedResource(
            type="resource",
            resource=types.TextResourceContents(
                uri="file:///r.txt", text="inside", mime_type="text/plain"
            ),
        ),
    ],
    structured_content={"n": 12345678901234567890, "f": 0.1, "nested": {"list": [1, None, True]}},
    _meta={"server/trace": "abc"},
)


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
    elif params.name == "rich":
        return RICH
    elif params.name == "sample":
        request = types.CreateMessageRequestParams(
            messages=[
                types.SamplingMessage(
                    role="user", content=types.TextContent(type="text", text="hi")
                )
            ],
            max_tokens=5,
        )
        try:
            with warnings.catch_warnings():  # sampling is deprecated in the 2026 protocol
                warnings.simplefilter("ignore")
                await ctx.session.create_message(request.messages, max_tokens=request.max_tokens)
        except MCPError as refused:
            _log(sampling=refused.error.message)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=refused.error.message)]
            )
    elif params.name == "die":
        print("giving up: out of coffee", file=sys.stderr, flush=True)
        os._exit(5)
    return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])


async def set_level(
    ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
) -> types.EmptyResult:
    _log(level=params.level)
    return types.EmptyResult()


async def list_resources(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    _log(asked="resources/list")  # the proxy offers no resources: never reached through it
    return types.ListResourcesResult(resources=[])


async def main() -> None:
    server = Server(
        "notifying",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
    )
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--exit-at-start"]:
        print("cannot open the config file /etc/notifying.toml", file=sys.stderr, flush=True)
        sys.exit(int(sys.argv[2]))
    anyio.run(main)
