"""What the proxy offers its clients, whatever carries their messages: the real server's
tools, each call governed, and the server's logging. Nothing else reaches the server (no
resources, prompts or completions: a path that is not governed is not offered)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from agent_control_plane.integrations.mcp_proxy.governor import ToolGovernor
from agent_control_plane.integrations.mcp_proxy.jsonrpc import Message, without_envelope
from agent_control_plane.integrations.mcp_proxy.upstream import Progress, Upstream


def invalid_params() -> MCPError:
    """The MCP SDK's error for a request whose params do not fit its method."""
    return MCPError(code=types.INVALID_PARAMS, message="Invalid request parameters", data="")


def method_not_found(method: str) -> MCPError:
    return MCPError(code=types.METHOD_NOT_FOUND, message="Method not found", data=method)


class Proxy:
    """The requests the proxy serves, on the server's JSON-RPC messages as they came."""

    def __init__(self, governor: ToolGovernor, upstream: Upstream) -> None:
        self.governor = governor
        self.upstream = upstream
        initialized = upstream.initialized
        assert initialized is not None, "the upstream server is initialized first"
        self.initialized = initialized
        capabilities = initialized.capabilities
        self.logging = capabilities.logging is not None
        self.tools_changed = bool(capabilities.tools and capabilities.tools.list_changed)

    def serves(self, method: str) -> bool:
        return method in ("tools/list", "tools/call") or (
            method == "logging/setLevel" and self.logging
        )

    async def serve(
        self,
        method: str,
        params: Message | None,
        request_id: Any,
        progress: Progress | None,
    ) -> Message:
        """The result of a request the proxy serves; MCPError otherwise."""
        if method == "tools/call":
            return await self.call_tool(params, request_id, progress)
        if method == "tools/list":
            return await self.list_tools(params)
        if method == "logging/setLevel" and self.logging:
            return await self.set_level(params)
        raise method_not_found(method)

    async def list_tools(self, params: Message | None) -> Message:
        listed = await self.upstream.request("tools/list", without_envelope(params))
        return self.governor.listed(listed)

    async def call_tool(
        self, params: Message | None, request_id: Any, progress: Progress | None
    ) -> Message:
        """Govern the call; forward it, as it came, only if it is allowed."""
        name = params.get("name") if params else None
        arguments = params.get("arguments") if params else None
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            raise invalid_params()
        forwarded = without_envelope(params)

        async def forward() -> Message:
            return await self.upstream.request("tools/call", forwarded, progress=progress)

        return await self.governor.call(name, arguments, request_id, forward)

    async def set_level(self, params: Message | None) -> Message:
        return await self.upstream.request("logging/setLevel", without_envelope(params))
