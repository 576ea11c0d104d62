"""The connection each operation runs on: checked out of the pool, or kept from the last one.

On a SQLite database file whose engine ACP created, checking a connection out of the pool
and back in (pool bookkeeping, the reset on return, pool events) cost nearly as much as a
decision's SQL. There, a connection that finished an operation cleanly is kept for the next
one, up to the pool's size. Each operation still runs in its own transaction, and the
database sees exactly the same statements.

Everywhere else every operation checks a connection out and back in: on PostgreSQL and
MySQL/MariaDB because the checkout pings the server, which is what lets ACP replace a
connection that went stale before a call starts; on a host's engine because its pool and
its limits are the host's.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

from agent_control_plane.errors import ControlPlaneError

R = TypeVar("R")
log = logging.getLogger("agent_control_plane")

_every: weakref.WeakSet[Connections] = weakref.WeakSet()


class Connections:
    def __init__(self, engine: Engine, *, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        if keep:
            _every.add(self)

    @classmethod
    def for_engine(cls, engine: Engine, *, owned: bool) -> Connections:
        """Keep connections only on a SQLite file engine ACP created (a QueuePool)."""
        pool = engine.pool
        if owned and engine.dialect.name == "sqlite" and isinstance(pool, QueuePool):
            return cls(engine, keep=pool.size())
        return cls(engine, keep=0)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def idle(self) -> int:
        """How many connections wait for the next operation."""
        return len(self._idle)

    def run(self, operation: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call ``operation(connection, *args, **kwargs)`` on a connection of the engine."""
        connection = self._take() if self._keep else self._engine.connect()
        try:
            result = operation(connection, *args, **kwargs)
        except ControlPlaneError:
            self._give_back(connection)
            raise
        except BaseException:
            # After a database failure the connection is not kept: the pool checks it.
            close_quietly(connection)
            raise
        self._give_back(connection)
        return result

    def _take(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._engine.connect()

    def _give_back(self, connection: Connection) -> None:
        if not self._keep:
            close_quietly(connection)
            return
        # Only a connection as the pool would hand it out again is kept: open, valid,
        # and with no transaction (one left open would hold SQLite's write lock).
        try:
            if connection.in_transaction() and not connection.invalidated:
                connection.rollback()
        except Exception:
            close_quietly(connection)
            return
        if not (connection.closed or connection.invalidated):
            with self._lock:
                if not self._closed and len(self._idle) < self._keep:
                    self._idle.append(connection)
                    return
        close_quietly(connection)

    def close(self) -> None:
        """Return every kept connection to the pool; later operations check out as usual."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _forget_after_fork(self) -> None:
        # A forked child must not use its parent's SQLite connections, nor close them.
        self._lock = threading.Lock()
        self._idle = []


def close_quietly(connection: Connection) -> None:
    """Return ``connection`` to the pool. A failure here comes after the call's last
    commit (the connection broke while being reset): it must not fail a call that
    succeeded, so the connection is discarded instead."""
    try:
        connection.close()
    except Exception:
        log.warning("ACP: a connection failed on its way back to the pool", exc_info=True)
        try:
            connection.invalidate()
            connection.close()
        except Exception:
            log.debug("ACP: discarding the broken connection failed too", exc_info=True)


def _after_fork_in_child() -> None:
    for connections in list(_every):
        connections._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
