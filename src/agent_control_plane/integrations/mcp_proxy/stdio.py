"""The proxy's stdio client, served at the JSON-RPC level.

Each line the client writes is read once, on the event loop (no thread per read): a
``tools/call`` is governed and then forwarded as it came, the other requests the proxy
serves are forwarded, the server's reply goes back as it came. The proxy answers
``initialize`` and ``ping`` itself, as the MCP SDK's server would.

A client that opens with the 2026 protocol's per-request envelope (instead of the
``initialize`` handshake) is served by the MCP SDK's server, as over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from asyncio.streams import FlowControlMixin
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError

from agent_control_plane.integrations.mcp_proxy.jsonrpc import (
    ENVELOPE_PREFIX,
    Message,
    decode,
    encode,
    error,
    lines,
    notification,
    progress_token,
    result,
)
from agent_control_plane.integrations.mcp_proxy.proxy import Proxy, invalid_params
from agent_control_plane.integrations.mcp_proxy.relay import Relay
from agent_control_plane.integrations.mcp_proxy.upstream import Progress

logger = logging.getLogger(__name__)

# Notifications kept until the client's first request says which protocol it speaks.
_EARLY_LIMIT = 8


def _enveloped(params: Message | None) -> bool:
    """Whether a request carries the 2026 protocol's envelope (its version in ``_meta``)."""
    meta = params.get("_meta") if params else None
    return isinstance(meta, dict) and f"{ENVELOPE_PREFIX}protocolVersion" in meta


class Output:
    """Where the proxy writes its client's messages: written at once, and waited for only
    while the client is not reading (the pipe and the buffer beyond it are full)."""

    def __init__(self, write: Callable[[bytes], object], drain: Callable[[], Awaitable[None]]):
        self.write = write
        self.drain = drain


class StdioClient:
    """One client on the proxy's stdin and stdout."""

    def __init__(self, proxy: Proxy, server: Server[Any], relay: Relay, out: Output) -> None:
        self._proxy = proxy
        self._server = server
        self._relay = relay
        self._out = out
        self._in_flight: dict[Any, asyncio.Task[None]] = {}
        self._cancelled: set[asyncio.Task[None]] = set()
        self._initialized = False
        self._era: str | None = None  # "handshake" or "modern", from the first request
        self._early: list[Message] = []
        self._sdk: MemoryObjectSendStream[SessionMessage | Exception] | None = None
        self._tasks: anyio.abc.TaskGroup | None = None

    async def notify(self, method: str, params: Message | None) -> None:
        self._out.write(encode(notification(method, params)))
        await self._out.drain()

    async def serve(self, messages: Callable[[], AsyncIterator[Message]]) -> None:
        """Serve the messages ``messages()`` yields until it ends."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                async for message in messages():
                    await self._received(message)
            finally:
                self._relay.remove(id(self))
                if self._sdk is not None:
                    await self._sdk.aclose()
                # Calls in flight end here, their outcomes recorded as cancelled.
                for task in list(self._in_flight.values()):
                    task.cancel()
                if self._in_flight:
                    with anyio.CancelScope(shield=True):
                        await asyncio.wait(list(self._in_flight.values()))

    async def _received(self, message: Message) -> None:
        if self._sdk is not None:
            await self._to_sdk(message)
            return
        method = message.get("method")
        if not isinstance(method, str):
            return  # a reply: the proxy sends its stdio client no requests
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            if "id" in message:
                self._reply(error(message["id"], invalid_params()))
            return
        if "id" not in message:
            if self._era is None:
                if len(self._early) < _EARLY_LIMIT:
                    self._early.append(message)
                return
            self._notified(method, params)
            return
        if self._era is None:
            await self._choose_era(message, method, params)
            if self._sdk is not None:
                return
        self._start(message["id"], method, params)

    async def _choose_era(self, message: Message, method: str, params: Message | None) -> None:
        """The first request decides, as in the MCP SDK's server: the envelope on anything
        but ``initialize`` opens the 2026 protocol, anything else the handshake era."""
        early, self._early = self._early, []
        if method != "initialize" and _enveloped(params):
            self._era = "modern"
            await self._serve_by_sdk([*early, message])
            return
        self._era = "handshake"
        self._relay.add(id(self), self)
        for notified in early:
            params = notified.get("params")
            self._notified(str(notified["method"]), params if isinstance(params, dict) else None)

    def _notified(self, method: str, params: Message | None) -> None:
        if method == "notifications/initialized":
            return
        if method == "notifications/cancelled":
            request_id = (params or {}).get("requestId")
            task = self._in_flight.get(request_id)
            if task is not None and not task.done():
                self._cancelled.add(task)
                task.cancel()
        # Nothing else a client notifies concerns the server: it offers the server no
        # roots, and answers none of its requests.

    def _start(self, request_id: Any, method: str, params: Message | None) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(request_id, method, params))
        self._in_flight[request_id] = task
        task.add_done_callback(lambda done: self._forget(request_id, done))

    def _forget(self, request_id: Any, task: asyncio.Task[None]) -> None:
        if self._in_flight.get(request_id) is task:
            del self._in_flight[request_id]
        self._cancelled.discard(task)

    async def _answer(self, request_id: Any, method: str, params: Message | None) -> None:
        try:
            reply = result(request_id, await self._result(request_id, method, params))
        except MCPError as failure:
            reply = error(request_id, failure)
        except asyncio.CancelledError:
            # Cancelled by the client: never answered (the spec says so). The proxy
            # stopping: the client is told the connection closed.
            if asyncio.current_task() not in self._cancelled:
                closed = MCPError(types.CONNECTION_CLOSED, "Connection closed")
                with suppress(Exception):
                    self._reply(error(request_id, closed))
            raise
        except Exception as failure:
            logger.exception("the proxy failed on %s", method)
            # Code 0, as the MCP SDK's server answers a handler that failed.
            reply = error(request_id, MCPError(0, str(failure)))
        self._reply(reply)
        await self._out.drain()

    def _reply(self, message: Message) -> None:
        self._out.write(encode(message))

    async def _result(self, request_id: Any, method: str, params: Message | None) -> Message:
        if method == "initialize":
            return self._initialize(params)
        if method == "ping":
            return {}
        if not self._proxy.serves(method):
            raise MCPError(types.METHOD_NOT_FOUND, "Method not found", method)
        if _enveloped(params):
            raise MCPError(
                types.INVALID_REQUEST,
                "this connection serves the handshake protocol era; requests carrying the "
                "2026-07-28 envelope are not accepted on it",
            )
        if not self._initialized:
            raise invalid_params()  # as the MCP SDK's server answers before initialize
        return await self._proxy.serve(method, params, request_id, self._progress_to(params))

    def _progress_to(self, params: Message | None) -> Progress | None:
        token = progress_token(params)
        if token is None:
            return None

        async def report(progress: Message) -> None:
            await self.notify("notifications/progress", {**progress, "progressToken": token})

        return report

    def _initialize(self, params: Message | None) -> Message:
        """The MCP SDK server's answer: the client's version if it is one of the
        handshake's, else the newest; the proxy's name, capabilities and instructions."""
        try:
            requested = types.InitializeRequestParams.model_validate(params or {}, by_name=False)
        except ValidationError:
            raise invalid_params() from None
        version = requested.protocol_version
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            version = LATEST_HANDSHAKE_VERSION
        options = self._server.create_initialization_options()
        answer = types.InitializeResult(
            protocol_version=version,
            capabilities=options.capabilities,
            server_info=types.Implementation(
                name=options.server_name,
                title=options.title,
                description=options.description,
                version=options.server_version,
                website_url=options.website_url,
                icons=options.icons,
            ),
            instructions=options.instructions,
        )
        self._initialized = True
        dumped = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        return serialize_server_result("initialize", version, dumped)

    async def _serve_by_sdk(self, first: list[Message]) -> None:
        """Hand the connection to the MCP SDK's server, from its first messages on."""
        assert self._tasks is not None
        to_server, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        to_client, from_server = anyio.create_memory_object_stream[SessionMessage](16)
        server = self._server

        async def run() -> None:
            await server.run(from_client, to_client, server.create_initialization_options())

        async def write() -> None:
            async with from_server:
                async for message in from_server:
                    text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    self._out.write(text.encode() + b"\n")
                    await self._out.drain()

        self._tasks.start_soon(run)
        self._tasks.start_soon(write)
        self._sdk = to_server
        for message in first:
            await self._to_sdk(message)

    async def _to_sdk(self, message: Message) -> None:
        assert self._sdk is not None
        try:
            parsed: SessionMessage | Exception = SessionMessage(
                types.jsonrpc_message_adapter.validate_python(message, by_name=False)
            )
        except ValidationError as exc:
            parsed = exc
        await self._sdk.send(parsed)


@contextmanager
def _claimed() -> Iterator[tuple[int, int]]:
    """Private copies of fds 0 and 1 for the wire; while serving, fd 0 reads the null device
    and fd 1 writes to stderr, so nothing else in the process (a stray print, a child that
    inherits them) can touch the wire. Restored at the end."""
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        os.close(null)
        sys.stdout.flush()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


async def serve_stdio(proxy: Proxy, server: Server[Any], relay: Relay) -> None:
    """Serve the client on the process's stdin and stdout until it closes stdin."""
    loop = asyncio.get_running_loop()
    with _claimed() as (wire_in, wire_out):
        reader = asyncio.StreamReader()
        stdin = os.fdopen(wire_in, "rb", buffering=0)
        stdout = os.fdopen(wire_out, "wb", buffering=0)
        receive: Callable[[int], Awaitable[bytes]]
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
            receive = reader.read
        except ValueError:  # a regular file, say: read it in a thread
            receive = _threaded(stdin.read)
        try:
            transport, flow = await loop.connect_write_pipe(FlowControlMixin, stdout)
            out = Output(transport.write, asyncio.StreamWriter(transport, flow, None, loop).drain)
        except ValueError:  # a regular file: its writes do not wait
            transport = None
            out = Output(stdout.write, _nothing)

        async def messages() -> AsyncIterator[Message]:
            async for line in lines(receive):
                message = decode(line)
                if message is not None:
                    yield message

        try:
            await StdioClient(proxy, server, relay, out).serve(messages)
        finally:
            if transport is not None:
                transport.close()
            stdin.close()
            stdout.close()


async def _nothing() -> None:
    return None


def _threaded(read: Callable[[int], bytes | None]) -> Callable[[int], Awaitable[bytes]]:
    async def receive(max_bytes: int) -> bytes:
        return await anyio.to_thread.run_sync(read, max_bytes, abandon_on_cancel=True) or b""

    return receive
