"""A TCP proxy between ACP and a database server, which a test controls.

It runs an asyncio loop on a thread of its own and forwards bytes both ways. The test can
drop every open connection, refuse new ones, and cut a connection at a chosen moment: when
the client sends a given command (``cut_at(b"COMMIT")``) or its n-th message since
arming. A cut either drops the client's message (the server never sees it: the server
rolls the transaction back) or forwards it first and then loses the reply (the server
acts on it, the client never hears back), which is what makes an outcome unknown.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = database_url.set(host="127.0.0.1", port=proxy.port)
        proxy.cut_at(b"COMMIT", forward=True)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy.engine import URL

T = TypeVar("T")
_CHUNK = 65536


@dataclass
class _Cut:
    pattern: bytes | None  # cut when a client message contains this...
    after: int | None  # ...or at the client's n-th message since arming
    forward: bool  # send that message to the server first (and lose the reply)
    then_refuse: bool  # refuse new connections after the cut
    reply: bool = False  # deliver the server's reply, then cut
    seen: int = 0


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.losing_reply = False
        self.cut_after_reply = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``host``:``port``; see the module docstring."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._refusing = False
        self._cut: _Cut | None = None
        self.cuts = 0  # how many connections a cut has ended
        # How many times clients sent something: a driver writes each round trip's
        # messages at once, so on a quiet connection this counts its round trips.
        self.client_writes = 0
        self.port = 0

    # ---- control, from the test's thread -------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = self._call(
            asyncio.start_server(self._accept, "127.0.0.1", 0, reuse_address=True)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()
        self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, url: URL) -> URL:
        """``url`` pointed at this proxy (without TLS, so commands can be recognised)."""
        proxied = url.set(host="127.0.0.1", port=self.port)
        if url.get_backend_name() == "postgresql":
            proxied = proxied.update_query_dict({"sslmode": "disable"})
        return proxied

    def refuse(self, refusing: bool = True) -> None:
        """Close every new connection at once (or, with False, accept them again)."""
        self._refusing = refusing

    def drop(self) -> None:
        """Abort every open connection now, on both sides."""
        self._call(self._drop_all())

    def cut_at(
        self,
        pattern: bytes | None = None,
        *,
        after: int | None = None,
        forward: bool = False,
        then_refuse: bool = False,
        reply: bool = False,
    ) -> None:
        """Arm one cut: at the next client message containing ``pattern``, or at the
        ``after``-th client message from now. ``forward`` sends that message on and loses
        the server's reply; otherwise the server never sees it. ``reply`` delivers the
        reply too and cuts right after it (the client's next message finds the connection
        gone). ``then_refuse`` also refuses every new connection from that moment."""
        assert (pattern is None) != (after is None)
        self._cut = _Cut(pattern, after, forward or reply, then_refuse, reply)

    def disarm(self) -> bool:
        """Disarm the cut; return whether it had fired."""
        fired = self._cut is None
        self._cut = None
        return fired

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def _call(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    # ---- the loop --------------------------------------------------------------------

    async def _drop_all(self) -> None:
        for pair in list(self._pairs):
            pair.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, server_writer)
        self._pairs.add(pair)
        await asyncio.gather(
            self._client_to_server(reader, pair),
            self._server_to_client(server_reader, pair),
            return_exceptions=True,
        )
        self._pairs.discard(pair)

    def _fires(self, data: bytes) -> _Cut | None:
        cut = self._cut
        if cut is None:
            return None
        cut.seen += 1
        hit = (cut.pattern is not None and cut.pattern in data) or cut.after == cut.seen
        if not hit:
            return None
        self._cut = None
        return cut

    async def _client_to_server(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        while data := await reader.read(_CHUNK):
            self.client_writes += 1
            cut = self._fires(data)
            if cut is None:
                pair.server.write(data)
                await pair.server.drain()
                continue
            self.cuts += 1
            if cut.then_refuse:
                self._refusing = True
            if cut.reply:
                pair.cut_after_reply = True
                pair.server.write(data)
                await pair.server.drain()
                continue
            if cut.forward:
                # The server gets the message and answers; the answer is lost.
                pair.losing_reply = True
                pair.server.write(data)
                await pair.server.drain()
                pair.client.transport.abort()
            else:
                pair.abort()
            return
        pair.server.close()

    async def _server_to_client(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        while data := await reader.read(_CHUNK):
            if pair.losing_reply:
                break  # the reply came: the server acted; now close its side too
            pair.client.write(data)
            await pair.client.drain()
            if pair.cut_after_reply:
                break
        pair.abort()


def commit_message(dialect: str) -> bytes:
    """The bytes of a COMMIT as the driver sends it (not any statement that merely
    contains the word, such as READ COMMITTED)."""
    if dialect == "postgresql":
        return b"Q\x00\x00\x00\x0bCOMMIT\x00"  # a simple Query message
    return b"\x07\x00\x00\x00\x03COMMIT"  # a COM_QUERY packet, sequence 0


def proxied_url(proxy: TcpProxy, url: URL) -> str:
    return proxy.url(url).render_as_string(hide_password=False)


def upstream_of(url: URL) -> tuple[str, int]:
    default = 5432 if url.get_backend_name() == "postgresql" else 3306
    return str(url.host or "127.0.0.1"), int(url.port or default)
