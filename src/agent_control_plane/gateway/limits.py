"""What one client can hold of the gateway: a request body of bounded size, read only after
the request shows a key, and a bounded number of long waits per key."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_control_plane.errors import ControlPlaneError
from agent_control_plane.gateway.problems import error_response, problem_response
from agent_control_plane.models import Principal

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Where the middleware leaves the principal it authenticated, in the request's state.
PRINCIPAL = "acp_principal"
DEFAULT_WAITS_PER_KEY = 8
# Operator pages sign in with a form and then a cookie, never an API key.
_KEYLESS_PREFIXES = ("/ui",)


class BodyTooLarge(BaseException):
    """Raised from ``receive`` when the body passes the limit while it streams in. A
    BaseException, so that no ``except Exception`` on the way (FastAPI turns any error while
    reading a body into a 400) catches it before this middleware answers 413."""


def presented_key(scope: Scope) -> str | None:
    """The API key the request shows (``Authorization: Bearer`` first, as the routes read
    it, then ``X-API-Key``), or None."""
    header_key: str | None = None
    for name, value in scope["headers"]:
        raw = bytes(value)
        if name == b"authorization" and raw[:7].lower() == b"bearer ":
            return raw[7:].strip().decode("latin-1")
        if name == b"x-api-key" and raw:
            header_key = raw.decode("latin-1")
    return header_key


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimits:
    """Pure ASGI middleware: a request that would send a body (``/v1`` routes) must show an
    API key that ``authenticate`` accepts, or it is refused before a byte of the body is
    read; every body is read only up to ``max_body_bytes`` (declared or streamed), past
    which the request is refused with 413. Nothing is parsed before that, so a large body
    costs neither memory nor a worker thread. The principal found is kept in the request's
    state (``PRINCIPAL``), so the route does not authenticate it again."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        authenticate: Callable[[str | None], Principal] | None = None,
        remembered: Callable[[str | None], Principal | None] | None = None,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.authenticate = authenticate
        self.remembered = remembered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        sends_body = declared not in (None, 0) or any(
            name == b"transfer-encoding" for name, _ in scope["headers"]
        )
        keyless = str(scope.get("path", "")).startswith(_KEYLESS_PREFIXES)
        if sends_body and not keyless:
            raw = presented_key(scope)
            if raw is None:
                await problem_response(
                    401, "unauthenticated", "Authentication required", "no API key was presented"
                )(scope, receive, send)
                return
            if self.authenticate is not None:
                try:
                    principal = await principal_of(raw, self.authenticate, self.remembered)
                except ControlPlaneError as error:
                    await error_response(error)(scope, receive, send)
                    return
                scope.setdefault("state", {})[PRINCIPAL] = principal
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)
        except BaseExceptionGroup as group:
            rest = group.subgroup(lambda error: not isinstance(error, BodyTooLarge))
            if rest is not None or started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_body_bytes} bytes"
        response = problem_response(413, "body_too_large", "Request body too large", detail)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class WaitSlots:
    """How many long waits each API key holds at once, capped."""

    def __init__(self, per_key: int = DEFAULT_WAITS_PER_KEY) -> None:
        if per_key < 1:
            raise ValueError("waits per key must be at least 1")
        self.per_key = per_key
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key_id: str) -> Iterator[None]:
        """A slot for one wait of ``key_id``; a 429 if it holds them all."""
        with self._lock:
            if self._held[key_id] >= self.per_key:
                raise HTTPException(
                    429,
                    f"this API key already waits on {self.per_key} requests, the most the "
                    "gateway allows one key: wait for one to end",
                    headers={"Retry-After": "1"},
                )
            self._held[key_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key_id] -= 1
                if not self._held[key_id]:
                    del self._held[key_id]

    def held(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._held)


async def principal_of(
    raw: str | None,
    authenticate: Callable[[str | None], Principal],
    remembered: Callable[[str | None], Principal | None] | None,
) -> Principal:
    """The key's principal: a key verified in the last second on the event loop (no I/O,
    a hash and a comparison), any other in a worker thread (it reads the key)."""
    known = None if remembered is None else remembered(raw)
    return known if known is not None else await run_in_threadpool(authenticate, raw)
