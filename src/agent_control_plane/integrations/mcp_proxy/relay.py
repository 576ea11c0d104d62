"""What passes between the agent's client and the real server besides governed calls: the
server's notifications (log messages, the tool list changed), the progress of a call in
flight, the client's log level. A client's cancellation of a call reaches the server
through the MCP SDK itself: the proxy's handler is cancelled, and the SDK tells the
server that the request it forwarded is cancelled."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.dispatcher import ProgressFnT

logger = logging.getLogger(__name__)

# The server's notifications the proxy passes on: it offers tools only, so a change to
# the server's resources or prompts means nothing to its clients.
RELAYED = (types.LoggingMessageNotification, types.ToolListChangedNotification)


class Relay:
    """Passes the real server's notifications on to every client of the proxy.

    It learns each client connection from the messages that client sends, and forgets
    it when the connection closes. Over HTTP every client shares the proxy's one server
    (and session), so each hears what that server says.
    """

    def __init__(self) -> None:
        self._clients: dict[int, ServerSession] = {}

    @property
    def clients(self) -> int:
        return len(self._clients)

    def learn(self, session: ServerSession) -> None:
        # The SDK hands lowlevel handlers no public handle on the connection, whose
        # exit stack says when the client is gone; without one, a client is kept.
        connection: Any = getattr(session, "_connection", None)
        key = id(session if connection is None else connection)
        if key in self._clients:
            return
        self._clients[key] = session
        if connection is not None:
            connection.exit_stack.callback(self._clients.pop, key, None)

    async def middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """A server middleware: every message a client sends makes the client known."""
        self.learn(ctx.session)
        return await call_next(ctx)

    async def from_server(self, message: types.ServerNotification | Exception) -> None:
        """The upstream session's message handler."""
        if isinstance(message, Exception):
            logger.warning("the MCP server sent something unreadable: %s", message)
            return
        if not isinstance(message, RELAYED):
            return
        for session in list(self._clients.values()):
            # A client that has just gone cannot be told; the others still are.
            with suppress(Exception):
                await session.send_notification(message)


def progress_to(ctx: ServerRequestContext[Any, Any]) -> ProgressFnT:
    """Report the server's progress on a forwarded call as the progress of the client's
    call (nothing is sent if the client asked for none)."""

    async def report(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    return report
