"""The real MCP server below the proxy: a child process spoken to over stdio, at the
JSON-RPC level (one line per message; no MCP SDK session in between).

The MCP SDK's ``stdio_client`` keeps neither the server's exit code nor its stderr, and
the proxy must say why a server failed, in one line: the command, its exit code and the
end of its stderr. So the child is run here; its stderr still reaches the proxy's own
stderr (the operator's log) as it comes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio
import anyio.abc
import mcp_types as types
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from agent_control_plane.errors import ConfigurationError, McpServerError
from agent_control_plane.integrations.mcp_proxy.jsonrpc import (
    Message,
    decode,
    encode,
    error,
    lines,
    notification,
    result,
)

# What the server says besides replies (method, params), and the progress it reports on
# one request (the params of notifications/progress).
Notify = Callable[[str, Message | None], Awaitable[None]]
Progress = Callable[[Message], Awaitable[None]]

STDERR_TAIL_LINES = 5
STDERR_TAIL_CHARS = 400
# How long a server has to exit once its stdin is closed, then once it is terminated.
EXIT_GRACE = 2.0
_POLL = 0.02


@dataclass
class ServerProcess:
    """What the proxy knows of the server it started."""

    command: list[str]
    process: Process
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    # Set when its stdout ends: it stopped, or soon will.
    ended: anyio.Event = field(default_factory=anyio.Event)

    @property
    def exit_code(self) -> int | None:
        return self.process.returncode

    def failure(self, what: str) -> McpServerError:
        """The one-line error saying ``what`` happened to the server, with its exit code and
        the end of its stderr."""
        said = " | ".join(line for line in self.tail if line.strip())
        if len(said) > STDERR_TAIL_CHARS:
            said = "…" + said[-STDERR_TAIL_CHARS:]
        code = self.exit_code
        ended = "is still running" if code is None else f"exited with code {code}"
        stderr = f"; its stderr ended with: {said}" if said else "; it wrote nothing to stderr"
        return McpServerError(
            f"the MCP server `{shlex.join(self.command)}` {what} and {ended}{stderr}",
            command=self.command,
            exit_code=code,
            stderr_tail=list(self.tail),
        )

    async def exited(self, timeout: float) -> bool:
        """Whether the process ended within ``timeout`` seconds. Polls ``returncode``: on
        asyncio, ``wait()`` also waits for the pipes, which a grandchild may hold open."""
        with anyio.move_on_after(timeout):
            while self.process.returncode is None:
                await anyio.sleep(_POLL)
        return self.process.returncode is not None


async def _relay_stderr(child: ServerProcess, errlog: TextIO) -> None:
    assert child.process.stderr is not None
    buffer = ""
    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async for chunk in TextReceiveStream(child.process.stderr, errors="replace"):
            errlog.write(chunk)
            errlog.flush()
            *lines, buffer = (buffer + chunk).split("\n")
            child.tail.extend(lines)
    if buffer:
        child.tail.append(buffer)


async def _stop(child: ServerProcess) -> None:
    """Close its stdin, give it time to exit, then terminate it (and what it started)."""
    assert child.process.stdin is not None
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await child.process.stdin.aclose()
    if await child.exited(EXIT_GRACE):
        return
    if sys.platform != "win32":
        from mcp.os.posix.utilities import terminate_posix_process_tree

        await terminate_posix_process_tree(child.process, EXIT_GRACE)
    else:  # pragma: no cover - the tests run on POSIX
        child.process.kill()
    await child.exited(EXIT_GRACE)


@asynccontextmanager
async def _server_process(command: list[str], errlog: TextIO) -> AsyncIterator[ServerProcess]:
    """Start ``command``, relaying its stderr; stop it when the block ends."""
    try:
        # The operator started the proxy: the server gets the proxy's whole environment,
        # and its own process group, so stopping it stops what it started too.
        process = await anyio.open_process(
            command, env=dict(os.environ), start_new_session=sys.platform != "win32"
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise McpServerError(
            f"the MCP server `{shlex.join(command)}` could not be started: {reason}",
            command=command,
            exit_code=None,
            stderr_tail=[],
        ) from exc
    child = ServerProcess(command, process)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_relay_stderr, child, errlog)
        try:
            yield child
        finally:
            # Stopping must finish whatever cancelled us, or the server would outlive us.
            with anyio.CancelScope(shield=True):
                await _stop(child)
            tasks.cancel_scope.cancel()
    await process.aclose()


def _closed() -> MCPError:
    return MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")


def _error_of(reply: Message) -> MCPError:
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        said = f"the MCP server answered with a malformed error: {error!r}"
        return MCPError(types.INTERNAL_ERROR, said[:500])
    return MCPError(error["code"], str(error.get("message", "")), error.get("data"))


# How the proxy answers the server's own requests: it offers the server no sampling,
# elicitation or roots (as the MCP SDK's client does without callbacks for them).
_NOT_OFFERED = {
    "sampling/createMessage": "Sampling not supported",
    "elicitation/create": "Elicitation not supported",
    "roots/list": "List roots not supported",
}


@dataclass(slots=True)
class _Waiting:
    reply: asyncio.Future[Message]
    progress: Progress | None


async def _ignore(method: str, params: Message | None) -> None:
    return None


class Upstream:
    """The real server, spoken to at the JSON-RPC level: each request gets an id of the
    proxy's own, and its reply is matched back to whoever is waiting for it.

    One task reads the server's stdout. Progress the server reports on a request goes to
    that request's ``progress`` callback; its other notifications go to ``notify``.
    """

    def __init__(self, child: ServerProcess, notify: Notify = _ignore) -> None:
        self.child = child
        self._notify = notify
        self._waiting: dict[int, _Waiting] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self.initialized: types.InitializeResult | None = None

    async def request(
        self, method: str, params: Message | None = None, *, progress: Progress | None = None
    ) -> Message:
        """Send a request and return its result; MCPError if the server answers with an
        error or goes away first. Cancelled, it tells the server the request is cancelled."""
        if self._closed:
            raise _closed()
        request_id = next(self._ids)
        if progress is not None:
            # The request id doubles as the progress token, as the MCP SDK does.
            params = dict(params or {})
            params["_meta"] = {**(params.get("_meta") or {}), "progressToken": request_id}
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = _Waiting(reply, progress)
        try:
            await self._send(message)
            return await reply
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                cancelled = {"requestId": request_id, "reason": "the client cancelled the call"}
                with suppress(MCPError):
                    await self._send(notification("notifications/cancelled", cancelled))
            raise
        finally:
            self._waiting.pop(request_id, None)

    async def notify(self, method: str, params: Message | None = None) -> None:
        await self._send(notification(method, params))

    async def _send(self, message: Message) -> None:
        stdin = self.child.process.stdin
        assert stdin is not None
        try:
            await stdin.send(encode(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise _closed() from None

    async def run(self) -> None:
        """Read the server's messages until its stdout ends."""
        stdout = self.child.process.stdout
        assert stdout is not None

        async def receive(max_bytes: int) -> bytes:
            try:
                return await stdout.receive(max_bytes)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return b""

        try:
            async with anyio.create_task_group() as answers:
                async for line in lines(receive):
                    message = decode(line)
                    if message is not None:
                        await self._received(message, answers)
                answers.cancel_scope.cancel()
        finally:
            self._closed = True
            for waiting in self._waiting.values():
                if not waiting.reply.done():
                    waiting.reply.set_exception(_closed())
            self.child.ended.set()

    async def _received(self, message: Message, answers: anyio.abc.TaskGroup) -> None:
        method = message.get("method")
        if isinstance(method, str):
            params = message.get("params")
            params = params if isinstance(params, dict) else None
            if "id" in message:
                answers.start_soon(self._answer, message["id"], method)
            elif method == "notifications/progress":
                await self._progress(params)
            else:
                await self._notify(method, params)
            return
        waiting = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if waiting is None or waiting.reply.done():
            return  # the reply to a request given up on
        if "error" in message:
            waiting.reply.set_exception(_error_of(message))
        else:
            value = message.get("result")
            waiting.reply.set_result(value if isinstance(value, dict) else {})

    async def _progress(self, params: Message | None) -> None:
        token = (params or {}).get("progressToken")
        waiting = self._waiting.get(token) if isinstance(token, int) else None
        if waiting is not None and waiting.progress is not None:
            await waiting.progress(params)  # type: ignore[arg-type]

    async def _answer(self, request_id: Any, method: str) -> None:
        if method == "ping":
            reply = result(request_id, {})
        elif method in _NOT_OFFERED:
            reply = error(request_id, MCPError(types.INVALID_REQUEST, _NOT_OFFERED[method]))
        else:
            reply = error(request_id, MCPError(types.METHOD_NOT_FOUND, "Method not found", method))
        with suppress(MCPError):
            await self._send(reply)

    async def initialize(self) -> types.InitializeResult:
        """The handshake, as the MCP SDK's client makes it (offering no capabilities)."""
        from agent_control_plane.version import __version__

        answer = await self.request(
            "initialize",
            {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "acp-mcp-proxy", "version": __version__},
            },
        )
        initialized = types.InitializeResult.model_validate(answer, by_name=False)
        if initialized.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise McpServerError(
                f"the MCP server answered initialize with protocol version "
                f"{initialized.protocol_version!r}, which the proxy does not speak",
                command=self.child.command,
                exit_code=None,
                stderr_tail=list(self.child.tail),
            )
        await self.notify("notifications/initialized")
        self.initialized = initialized
        return initialized


@asynccontextmanager
async def upstream(
    command: list[str], *, errlog: TextIO = sys.stderr, notify: Notify = _ignore
) -> AsyncIterator[tuple[Upstream, ServerProcess]]:
    """The real server, started and initialized; McpServerError if it cannot be."""
    if not command:
        raise ConfigurationError("name the MCP server to run after --, e.g. -- python server.py")
    started = False
    failure: Exception | None = None
    async with _server_process(command, errlog) as child:
        server = Upstream(child, notify)
        async with anyio.create_task_group() as reading:
            reading.start_soon(server.run)
            try:
                await server.initialize()
                started = True
                yield server, child
            except Exception as exc:
                if started:
                    raise
                failure = exc
            finally:
                reading.cancel_scope.cancel()
    if failure is not None:
        raise child.failure("did not start (it never answered initialize)") from failure
