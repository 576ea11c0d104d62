"""The proxy process: the real MCP server below (stdio), the agent's client above (stdio or
streamable HTTP), and a ToolGovernor in between.

Over stdio the proxy speaks JSON-RPC itself (``stdio.py``); over HTTP the MCP SDK's server
carries the messages (``sdk.py``). Both serve the same ``Proxy``."""

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
import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel import Server
from pydantic import AnyHttpUrl

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.engine import sync_url_text
from agent_control_plane.errors import ConfigurationError, InvalidTransitionError, McpServerError
from agent_control_plane.integrations.mcp_proxy.governance import OnOneThread
from agent_control_plane.integrations.mcp_proxy.governor import ToolGovernor
from agent_control_plane.integrations.mcp_proxy.keys import TOOLS_SCOPE, ApiKeyVerifier
from agent_control_plane.integrations.mcp_proxy.proxy import Proxy
from agent_control_plane.integrations.mcp_proxy.relay import Relay
from agent_control_plane.integrations.mcp_proxy.sdk import build_server
from agent_control_plane.integrations.mcp_proxy.stdio import serve_stdio
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


async def attach(control_plane: OnOneThread, settings: ProxySettings) -> Attached:
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


async def _serve_clients(
    settings: ProxySettings,
    proxy: Proxy,
    server: Server[Any],
    relay: Relay,
    control_plane: OnOneThread,
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
            await serve_stdio(proxy, server, relay)
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
    # The URL may name an asyncio driver (the proxy used to open AsyncControlPlane): the
    # sync one ACP ships with serves it.
    url = None if settings.url is None else sync_url_text(settings.url)
    with ControlPlane.open(
        url, schema=settings.schema, table_prefix=settings.table_prefix, migrate="verify"
    ) as opened:
        control_plane = OnOneThread(opened)
        try:
            await _govern_and_serve(settings, announce, control_plane)
        finally:
            control_plane.close()


async def _govern_and_serve(
    settings: ProxySettings, announce: Callable[[str], None], control_plane: OnOneThread
) -> None:
    """Attach to the session, start the real server and serve until either ends."""
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
        async with upstream(settings.server_command, notify=relay.from_server) as (
            server_below,
            child,
        ):
            proxy = Proxy(governor, server_below)
            server = build_server(proxy, relay)
            where = (
                "stdio" if settings.listen is None else "http://{}:{}/mcp".format(*settings.listen)
            )
            announce(
                f"session {attached.session_id} (policy {attached.policy.name!r}), serving {where}"
            )
            async with governor.recording_behind():
                await _serve_clients(settings, proxy, server, relay, control_plane, attached, child)
            ended_alone = child.ended.is_set()
        if ended_alone:
            raise child.failure("stopped while the proxy was serving")
    except McpServerError:
        if attached.opened:
            await _end(control_plane, attached, "mcp.server_failed")
        raise
    if attached.opened:
        await _end(control_plane, attached, None)


async def _end(control_plane: OnOneThread, attached: Attached, reason: str | None) -> None:
    """Complete the session the proxy opened (one killed while it served stays killed)."""
    with suppress(InvalidTransitionError):
        await control_plane.complete_session(attached.session_id, reason=reason)


def run(settings: ProxySettings, announce: Callable[[str], None] | None = None) -> None:
    """Blocking entry point used by ``acp mcp-proxy``."""

    def to_stderr(message: str) -> None:
        print(f"acp mcp-proxy: {message}", file=sys.stderr, flush=True)

    anyio.run(serve, settings, announce or to_stderr)
