"""What the real server says to the proxy's clients besides replies: its log messages and
that its tool list changed. (The progress of a call in flight goes to that call's client
only; see ``Upstream``.)"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession

from agent_control_plane.integrations.mcp_proxy.jsonrpc import Message

logger = logging.getLogger(__name__)

# The server's notifications the proxy passes on: it offers tools only, so a change to
# the server's resources or prompts means nothing to its clients.
RELAYED = frozenset({"notifications/message", "notifications/tools/list_changed"})


class Listener(Protocol):
    """A client connection the server's notifications are passed to."""

    async def notify(self, method: str, params: Message | None) -> None: ...


class _SessionListener:
    """A client the MCP SDK's server serves (streamable HTTP, or the 2026 protocol)."""

    def __init__(self, session: ServerSession) -> None:
        self._session = session

    async def notify(self, method: str, params: Message | None) -> None:
        message = {"method": method} if params is None else {"method": method, "params": params}
        await self._session.send_notification(
            types.server_notification_adapter.validate_python(message, by_name=False)
        )


class Relay:
    """Passes the real server's notifications on to every client of the proxy.

    A stdio client is added when it connects. A client the MCP SDK serves is learned from
    the messages it sends, and forgotten when its connection closes; over HTTP every
    client shares the proxy's one server (and session), so each hears what it says.
    """

    def __init__(self) -> None:
        self._clients: dict[int, Listener] = {}

    @property
    def clients(self) -> int:
        return len(self._clients)

    def add(self, key: int, listener: Listener) -> None:
        self._clients[key] = listener

    def remove(self, key: int) -> None:
        self._clients.pop(key, None)

    def learn(self, session: ServerSession) -> None:
        # The SDK hands lowlevel handlers no public handle on the connection, whose
        # exit stack says when the client is gone; without one, a client is kept.
        connection: Any = getattr(session, "_connection", None)
        key = id(session if connection is None else connection)
        if key in self._clients:
            return
        self._clients[key] = _SessionListener(session)
        if connection is not None:
            connection.exit_stack.callback(self.remove, key)

    async def middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """A server middleware: every message a client sends makes the client known."""
        self.learn(ctx.session)
        return await call_next(ctx)

    async def from_server(self, method: str, params: Message | None) -> None:
        """What the upstream server notified, passed on if its clients should hear it."""
        if method not in RELAYED:
            return
        for client in list(self._clients.values()):
            # A client that has just gone cannot be told; the others still are.
            with suppress(Exception):
                await client.notify(method, params)
