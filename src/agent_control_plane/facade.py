"""Turn one operation into a ControlPlane method and an AsyncControlPlane method.

An operation is ``fn(connection, runtime, *args, **kwargs)``; the sync method runs it
on a pooled connection, the async method runs the very same function through
``AsyncConnection.run_sync`` (or, on a SQLite file ACP opened itself, on a pysqlite
connection in a worker thread). No rule or statement exists twice.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Connection

from agent_control_plane.runtime import Runtime

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

P = ParamSpec("P")
R = TypeVar("R")

Operation = Callable[Concatenate[Connection, Runtime, P], R]


def _public_signature(operation: Callable[..., Any], *, asynchronous: bool) -> inspect.Signature:
    signature = inspect.signature(operation)
    parameters = list(signature.parameters.values())[2:]
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_parameter, *parameters])


def sync_method(operation: Operation[P, R]) -> Callable[Concatenate[ControlPlane, P], R]:
    @functools.wraps(operation)
    def method(self: ControlPlane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._connections.run(operation, self._runtime, *args, **kwargs)

    del method.__wrapped__
    method.__signature__ = _public_signature(operation, asynchronous=False)  # type: ignore[attr-defined]
    return method


def async_method(
    operation: Operation[P, R],
) -> Callable[Concatenate[AsyncControlPlane, P], Coroutine[Any, Any, R]]:
    @functools.wraps(operation)
    async def method(self: AsyncControlPlane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        runtime = self._runtime
        threaded = self._threaded
        if threaded is not None:
            # SQLite file ACP opened itself: the whole operation in one worker thread.
            return await asyncio.to_thread(
                lambda: threaded.run(operation, runtime, *args, **kwargs)
            )
        async with self._engine.connect() as connection:
            return await connection.run_sync(
                lambda sync_connection: operation(sync_connection, runtime, *args, **kwargs)
            )

    del method.__wrapped__
    method.__signature__ = _public_signature(operation, asynchronous=True)  # type: ignore[attr-defined]
    return method
