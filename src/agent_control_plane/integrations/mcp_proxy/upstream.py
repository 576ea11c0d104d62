"""The real MCP server below the proxy: a child process spoken to over stdio.

The MCP SDK's ``stdio_client`` keeps neither the server's exit code nor its stderr, and
the proxy must say why a server failed, in one line: the command, its exit code and the
end of its stderr. So the child is run here; its stderr still reaches the proxy's own
stderr (the operator's log) as it comes.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio
import mcp_types as types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.text import TextReceiveStream
from mcp import ClientSession
from mcp.shared.message import SessionMessage

from agent_control_plane.errors import ConfigurationError, McpServerError

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


def _message(line: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # the session reports it and goes on
        return exc


async def _read_stdout(
    child: ServerProcess, messages: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    assert child.process.stdout is not None
    buffer = ""
    try:
        async with messages:
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for chunk in TextReceiveStream(child.process.stdout, errors="replace"):
                    *lines, buffer = (buffer + chunk).split("\n")
                    for line in lines:
                        if line.strip():
                            await messages.send(_message(line))
    finally:
        child.ended.set()


async def _write_stdin(
    process: Process,
    outgoing: MemoryObjectReceiveStream[SessionMessage],
    messages: MemoryObjectSendStream[SessionMessage | Exception],
) -> None:
    assert process.stdin is not None
    async with outgoing:
        try:
            async for message in outgoing:
                text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await process.stdin.send((text + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server stopped reading: end the session's stream, so no request waits
            # for an answer that cannot come.
            await messages.aclose()


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
async def _server_process(
    command: list[str], errlog: TextIO
) -> AsyncIterator[
    tuple[
        ServerProcess,
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
    ]
]:
    """Start ``command`` and yield it with the read and write streams of its stdio."""
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
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_read_stdout, child, incoming_send)
        tasks.start_soon(_write_stdin, process, outgoing_receive, incoming_send)
        tasks.start_soon(_relay_stderr, child, errlog)
        try:
            yield child, incoming, outgoing
        finally:
            # Stopping must finish whatever cancelled us, or the server would outlive us.
            with anyio.CancelScope(shield=True):
                await outgoing.aclose()
                await _stop(child)
                await incoming.aclose()
            tasks.cancel_scope.cancel()
    await process.aclose()


@asynccontextmanager
async def upstream(
    command: list[str], *, errlog: TextIO = sys.stderr, **session_options: Any
) -> AsyncIterator[tuple[ClientSession, ServerProcess]]:
    """The real MCP server, started and initialized; McpServerError if it cannot be."""
    if not command:
        raise ConfigurationError("name the MCP server to run after --, e.g. -- python server.py")
    started = False
    failure: Exception | None = None
    async with _server_process(command, errlog) as (child, read, write):
        try:
            async with ClientSession(read, write, **session_options) as session:
                await session.initialize()
                started = True
                yield session, child
        except Exception as exc:
            if started:
                raise
            failure = exc
    if failure is not None:
        raise child.failure("did not start (it never answered initialize)") from failure
