"""The proxy process: the real MCP server below (stdio), the agent's client above (stdio or
streamable HTTP), and a ToolGovernor in between."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp import ClientSession
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server
from pydantic import AnyHttpUrl

from agent_control_plane.control_plane import AsyncControlPlane
from agent_control_plane.errors import ConfigurationError, InvalidTransitionError, McpServerError
from agent_control_plane.integrations.mcp_proxy.governor import ToolGovernor
from agent_control_plane.integrations.mcp_proxy.keys import TOOLS_SCOPE, ApiKeyVerifier
from agent_control_plane.integrations.mcp_proxy.relay import Relay, progress_to
from agent_control_plane.integrations.mcp_proxy.upstream import ServerProcess, upstream
from agent_control_plane.rules.policy import PolicyDocument, load_policy_file
from agent_control_plane.rules.routing import CompiledPolicy


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Everything ``acp mcp-proxy`` was told."""

    server_command: list[str]
    policy_file: Path | None = None
    url: str | None = None
    schema: str | None = None
    table_prefix: str | None = None
    session_id: str | None = None
    agent_id: str = "mcp-proxy"
    tenant: str | None = None
    max_cost: Decimal = Decimal("1")
    max_actions: int = 1000
    hide_blocked: bool = False
    listen: tuple[str, int] | None = None
    # Serve HTTP without asking clients for an API key (a trusted local network only).
    anonymous: bool = False


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ConfigurationError otherwise."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"--listen takes HOST:PORT, e.g. 127.0.0.1:8765 (got {value!r})")
    return host, int(port)


class _HttpServer(uvicorn.Server):
    """uvicorn, stopping on SIGINT/SIGTERM as usual but then returning instead of
    re-raising the signal, so the proxy still closes its session and its server."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


@dataclass(frozen=True, slots=True)
class Attached:
    session_id: uuid.UUID
    policy: PolicyDocument
    opened: bool
    tenant: str | None
    agent_id: str


async def attach(control_plane: AsyncControlPlane, settings: ProxySettings) -> Attached:
    """The session the proxy governs: the given one (its own policy), or a new one."""
    document = None if settings.policy_file is None else load_policy_file(settings.policy_file)
    if settings.session_id is not None:
        session = await control_plane.get_session(settings.session_id)
        stored = (await control_plane.get_policy(session.policy_id)).document
        if document is not None and document.digest != stored.digest:
            raise ConfigurationError(
                f"session {session.id} runs policy {stored.name!r} as stored, which differs "
                f"from {settings.policy_file}; omit --policy or open a new session with it"
            )
        return Attached(
            session.id, stored, opened=False, tenant=session.tenant, agent_id=session.agent_id
        )
    if document is None:
        raise ConfigurationError("give --policy FILE to open a session, or --session ID")
    session = await control_plane.open_session(
        "mcp-proxy",
        agent_id=settings.agent_id,
        tenant=settings.tenant,
        policy=document,
        max_cost=settings.max_cost,
        max_actions=settings.max_actions,
    )
    return Attached(
        session.id, document, opened=True, tenant=session.tenant, agent_id=session.agent_id
    )


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


def build_server(governor: ToolGovernor, session: ClientSession, relay: Relay) -> Server[Any]:
    """An MCP server that offers the real server's tools, each call governed, and passes
    on the real server's notifications."""
    info = session.server_info
    name = f"acp-proxy:{info.name}" if info is not None else "acp-proxy"
    capabilities = session.server_capabilities or types.ServerCapabilities()

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return governor.listed(await session.list_tools(params=params))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        async def forward() -> types.CallToolResult:
            return await session.call_tool(
                params.name, params.arguments, progress_callback=progress_to(ctx)
            )

        return await governor.call(params.name, params.arguments, ctx.request_id, forward)

    async def set_level(
        ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        # Sent as it came: ClientSession.set_logging_level warns of the 2026 deprecation.
        return await session.send_request(types.SetLevelRequest(params=params), types.EmptyResult)

    server = _ProxyServer(
        name,
        tools_changed=bool(capabilities.tools and capabilities.tools.list_changed),
        version=info.version if info is not None else "",
        instructions=session.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    if capabilities.logging is not None:
        # Registered here, not as on_set_logging_level=, which warns of the capability's
        # deprecation in the 2026 protocol: clients of the 2025 one still use it.
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.middleware.append(relay.middleware)
    return server


async def _serve_clients(
    settings: ProxySettings,
    server: Server[Any],
    control_plane: AsyncControlPlane,
    attached: Attached,
    child: ServerProcess,
) -> None:
    """Serve the agent's clients until the stdio client goes away, the process is stopped
    (HTTP), or the real server stops."""
    async with anyio.create_task_group() as tasks:
        http: _HttpServer | None = None

        async def stop_when_the_server_ends() -> None:
            await child.ended.wait()
            if http is not None:
                http.should_exit = True
            else:
                tasks.cancel_scope.cancel()

        tasks.start_soon(stop_when_the_server_ends)
        if settings.listen is None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            host, port = settings.listen
            if settings.anonymous:
                app = server.streamable_http_app(host=host)
            else:
                app = server.streamable_http_app(
                    host=host,
                    auth=AuthSettings(
                        issuer_url=AnyHttpUrl(f"http://{host}:{port}"),
                        resource_server_url=None,
                        required_scopes=[TOOLS_SCOPE],
                    ),
                    token_verifier=ApiKeyVerifier(
                        control_plane, attached.tenant, attached.agent_id
                    ),
                )
            http = _HttpServer(uvicorn.Config(app, host=host, port=port, log_level="warning"))
            await http.serve()
        tasks.cancel_scope.cancel()


async def serve(settings: ProxySettings, announce: Callable[[str], None]) -> None:
    """Run the proxy until the client goes away (stdio) or the process is stopped (HTTP).

    McpServerError if the real server does not start, or stops while the proxy serves;
    either way a session the proxy opened is ended.
    """
    async with await AsyncControlPlane.open(
        settings.url, schema=settings.schema, table_prefix=settings.table_prefix, migrate="verify"
    ) as control_plane:
        attached = await attach(control_plane, settings)
        governor = ToolGovernor(
            control_plane,
            attached.session_id,
            CompiledPolicy.compile(attached.policy),
            hide_blocked=settings.hide_blocked,
            tell_operator=announce,
        )
        relay = Relay()
        ended_alone = False
        try:
            async with upstream(settings.server_command, message_handler=relay.from_server) as (
                session,
                child,
            ):
                server = build_server(governor, session, relay)
                where = (
                    "stdio"
                    if settings.listen is None
                    else "http://{}:{}/mcp".format(*settings.listen)
                )
                announce(
                    f"session {attached.session_id} (policy {attached.policy.name!r}), "
                    f"serving {where}"
                )
                async with governor.recording_behind():
                    await _serve_clients(settings, server, control_plane, attached, child)
                ended_alone = child.ended.is_set()
            if ended_alone:
                raise child.failure("stopped while the proxy was serving")
        except McpServerError:
            if attached.opened:
                await _end(control_plane, attached, "mcp.server_failed")
            raise
        if attached.opened:
            await _end(control_plane, attached, None)


async def _end(control_plane: AsyncControlPlane, attached: Attached, reason: str | None) -> None:
    """Complete the session the proxy opened (one killed while it served stays killed)."""
    with suppress(InvalidTransitionError):
        await control_plane.complete_session(attached.session_id, reason=reason)


def run(settings: ProxySettings, announce: Callable[[str], None] | None = None) -> None:
    """Blocking entry point used by ``acp mcp-proxy``."""

    def to_stderr(message: str) -> None:
        print(f"acp mcp-proxy: {message}", file=sys.stderr, flush=True)

    anyio.run(serve, settings, announce or to_stderr)
