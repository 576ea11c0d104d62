"""Turn one operation into a ControlPlane method and an AsyncControlPlane method.

An operation is ``fn(connection, runtime, *args, **kwargs)``; the sync method runs it
on a pooled connection, the async method runs the very same function through
``AsyncConnection.run_sync`` (or, on a SQLite file ACP opened itself, on a pysqlite
connection in a worker thread). No rule or statement exists twice.

Both go through the control plane's Boundary, the one place where database failures
become ACP's errors; a closed control plane refuses before anything connects, and a
kill runs on a pool of its own, so it never waits behind governed calls for a connection.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_control_plane.errors import ControlPlaneClosedError
from agent_control_plane.operations.traits import REPEATABLE, URGENT
from agent_control_plane.runtime import Runtime

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

P = ParamSpec("P")
R = TypeVar("R")

Operation = Callable[Concatenate[Connection, Runtime, P], R]

log = logging.getLogger("agent_control_plane")


class _Closable(Protocol):
    _closed: bool


def refuse_if_closed(control_plane: _Closable) -> None:
    """Raise ControlPlaneClosedError once ``control_plane`` was closed."""
    if control_plane._closed:
        raise ControlPlaneClosedError(
            "this control plane is closed (close() or the end of its with block): "
            "open a new one with ControlPlane.open(...)"
        )


def _public_signature(operation: Callable[..., Any], *, asynchronous: bool) -> inspect.Signature:
    signature = inspect.signature(operation)
    parameters = list(signature.parameters.values())[2:]
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_parameter, *parameters])


def sync_method(operation: Operation[P, R]) -> Callable[Concatenate[ControlPlane, P], R]:
    @functools.wraps(operation)
    def method(self: ControlPlane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        refuse_if_closed(self)
        connections = self._connections
        if operation in URGENT and self._urgent is not None:
            connections = self._urgent
        return self._boundary.run(
            connections.run,
            operation,
            (self._runtime, *args),
            kwargs,
            repeatable=operation in REPEATABLE,
        )

    del method.__wrapped__
    method.__signature__ = _public_signature(operation, asynchronous=False)  # type: ignore[attr-defined]
    return method


async def _close_quietly(connection: AsyncConnection) -> None:
    """As Connections' twin: a failure returning the connection never fails the call."""
    try:
        await connection.close()
    except Exception:
        log.warning("ACP: a connection failed on its way back to the pool", exc_info=True)
        try:
            await connection.invalidate()
            await connection.close()
        except Exception:
            log.debug("ACP: discarding the broken connection failed too", exc_info=True)


async def _on_connection(engine: AsyncEngine, function: Callable[[Connection], R]) -> R:
    connection = await engine.connect()
    try:
        result = await connection.run_sync(function)
    except BaseException:
        await _close_quietly(connection)
        raise
    await _close_quietly(connection)
    return result


def async_method(
    operation: Operation[P, R],
) -> Callable[Concatenate[AsyncControlPlane, P], Coroutine[Any, Any, R]]:
    @functools.wraps(operation)
    async def method(self: AsyncControlPlane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        refuse_if_closed(self)
        urgent = operation in URGENT
        threaded = (self._urgent_threaded or self._threaded) if urgent else self._threaded
        if threaded is not None and urgent:
            # A kill's worker thread is its own too: it never queues behind governed calls
            # waiting for the default executor.
            def run(function: Callable[[Connection], R]) -> Awaitable[R]:
                assert threaded is not None
                loop = asyncio.get_running_loop()
                return loop.run_in_executor(self._urgent_executor, threaded.run, function)
        elif threaded is not None:
            # SQLite file ACP opened itself: the whole operation in one worker thread.
            def run(function: Callable[[Connection], R]) -> Awaitable[R]:
                assert threaded is not None
                return asyncio.to_thread(threaded.run, function)
        else:
            engine = self._urgent_engine if urgent and self._urgent_engine else self._engine

            def run(function: Callable[[Connection], R]) -> Awaitable[R]:
                return _on_connection(engine, function)

        return await self._boundary.run_async(
            run,
            operation,
            (self._runtime, *args),
            kwargs,
            repeatable=operation in REPEATABLE,
        )

    del method.__wrapped__
    method.__signature__ = _public_signature(operation, asynchronous=True)  # type: ignore[attr-defined]
    return method
