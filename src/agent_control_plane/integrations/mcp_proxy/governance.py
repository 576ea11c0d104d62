"""Where the proxy's governing calls run: a ControlPlane's, on one thread of their own.

Measured on the proxy (see bench/mcp_proxy.py): on PostgreSQL, ``AsyncControlPlane.govern``
(SQLAlchemy's asyncio layer over psycopg's async connection, a greenlet switch per
statement) takes about a third more CPU than ``ControlPlane.govern`` on the same
statements; on SQLite the async class already runs the sync connection in a worker
thread, but a pooled one, woken per call. One dedicated thread running the sync class
serves both: the event loop never blocks on the database, and the calls of the one
session the proxy governs (which take that session's row lock in turn anyway) queue in
the order they came.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, Protocol, TypeVar

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.models import Decision, Event, Principal

P = ParamSpec("P")
R = TypeVar("R")


class Governs(Protocol):
    """What a ToolGovernor asks of the control plane (an AsyncControlPlane has it too)."""

    @property
    def govern(self) -> Callable[..., Awaitable[Decision]]: ...

    @property
    def record_outcome(self) -> Callable[..., Awaitable[Event]]: ...

    @property
    def _record_event(self) -> Callable[..., Awaitable[Any]]: ...


class Authenticates(Protocol):
    """What the HTTP proxy's key check asks of the control plane."""

    @property
    def authenticate_api_key(self) -> Callable[[str], Awaitable[Principal]]: ...

    @property
    def remembered_principal(self) -> Callable[[str], Principal | None]: ...


class OnOneThread:
    """The ControlPlane methods the proxy calls, awaitable, each run on the same thread (in
    the order they are called)."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="acp-mcp-governance")
        self.govern = self._on_thread(control_plane.govern)
        self.record_outcome = self._on_thread(control_plane.record_outcome)
        self._record_event = self._on_thread(control_plane._record_event)
        self.get_session = self._on_thread(control_plane.get_session)
        self.get_policy = self._on_thread(control_plane.get_policy)
        self.open_session = self._on_thread(control_plane.open_session)
        self.complete_session = self._on_thread(control_plane.complete_session)
        self.authenticate_api_key = self._on_thread(control_plane.authenticate_api_key)
        self.remembered_principal = control_plane.remembered_principal  # no I/O: no thread

    def _on_thread(self, method: Callable[P, R]) -> Callable[P, Awaitable[R]]:
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._thread, functools.partial(method, *args, **kwargs)
            )

        return call

    def close(self) -> None:
        """Wait for the calls under way, then stop the thread."""
        self._thread.shutdown(wait=True)
