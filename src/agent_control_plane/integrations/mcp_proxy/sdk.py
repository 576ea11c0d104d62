"""The proxy as an MCP SDK server: what serves streamable HTTP (sessions, bearer keys, SSE)
and a stdio client of the 2026 protocol. It answers with the same ``Proxy`` as the stdio
path, on the messages' own params."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions

from agent_control_plane.integrations.mcp_proxy.jsonrpc import Message, progress_token
from agent_control_plane.integrations.mcp_proxy.proxy import Proxy
from agent_control_plane.integrations.mcp_proxy.relay import Relay
from agent_control_plane.integrations.mcp_proxy.upstream import Progress


class _ProxyServer(Server[Any]):
    """The lowlevel server, announcing ``tools.listChanged`` when the real server does (on
    stdio and over HTTP alike, where the SDK builds the initialization options itself)."""

    def __init__(self, name: str, *, tools_changed: bool, **options: Any) -> None:
        super().__init__(name, **options)
        self._tools_changed = tools_changed

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=self._tools_changed),
            experimental_capabilities,
            extensions,
        )


def _params(ctx: ServerRequestContext[Any, Any]) -> Message | None:
    """The request's params as the client sent them (the SDK has checked their shape)."""
    return None if ctx.params is None else dict(ctx.params)


def _progress_to(ctx: ServerRequestContext[Any, Any]) -> Progress | None:
    """Report the server's progress on a forwarded call as the progress of the client's
    call; None if the client asked for none."""
    if progress_token(_params(ctx)) is None:
        return None

    async def report(params: Message) -> None:
        await ctx.session.report_progress(
            params.get("progress", 0), params.get("total"), params.get("message")
        )

    return report


def build_server(proxy: Proxy, relay: Relay) -> Server[Any]:
    """An MCP server that offers the real server's tools, each call governed, and passes
    on the real server's notifications."""
    initialized = proxy.initialized
    info = initialized.server_info

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
    ) -> HandlerResult:
        # Typed, so the SDK shapes it for the client's protocol (the 2026 one adds fields).
        listed = await proxy.list_tools(_params(ctx))
        return types.ListToolsResult.model_validate(listed, by_name=False)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> HandlerResult:
        called = await proxy.call_tool(_params(ctx), ctx.request_id, _progress_to(ctx))
        return types.CallToolResult.model_validate(called, by_name=False)

    async def set_level(
        ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> HandlerResult:
        return await proxy.set_level(_params(ctx))

    server = _ProxyServer(
        f"acp-proxy:{info.name}",
        tools_changed=proxy.tools_changed,
        version=info.version,
        instructions=initialized.instructions,
    )
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    if proxy.logging:
        # Registered here, not as on_set_logging_level=, which warns of the capability's
        # deprecation in the 2026 protocol: clients of the 2025 one still use it.
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.middleware.append(relay.middleware)
    return server
