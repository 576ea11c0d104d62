"""The one place where database failures become ACP's documented errors.

Every public method runs through :meth:`Boundary.run` (``open()`` and ``schema_revision``
through :meth:`Boundary.translated`), as httpx's ``map_httpcore_exceptions`` wraps every
transport call: whatever the database, its driver or the pool raises there, checking out
a connection included, leaves as a GovernanceUnavailableError (or one of its subclasses)
with the original chained. Inside it, :func:`call` runs one operation on one connection:
it repeats an operation that lost a deadlock or a serialization conflict, as long as none
of its transactions committed, and it tells a failure at or after a COMMIT (the outcome is
unknown) from every other failure by raising :class:`InDoubt`, which the boundary settles
on a fresh connection (:func:`settle_doubt`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from agent_control_plane.errors import (
    ControlPlaneError,
    GovernanceBusyError,
    GovernanceUnavailableError,
    OutcomeUnknownError,
)

log = logging.getLogger("agent_control_plane")

R = TypeVar("R")

# How many times one call runs when it keeps losing deadlocks (all of them, not retries).
ATTEMPTS = 5

_COMMITS = "_acp_commits"

# PostgreSQL SQLSTATEs and MySQL/MariaDB error numbers.
_PG_RETRY = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
_PG_BUSY = frozenset({"55P03"})  # lock_not_available (lock_timeout)
_MYSQL_RETRY = frozenset({1213})  # ER_LOCK_DEADLOCK
_MYSQL_BUSY = frozenset({1205})  # ER_LOCK_WAIT_TIMEOUT
_SQLITE_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def watch_commits(engine: Engine) -> None:
    """Count, on each connection of ``engine``, the COMMITs it sent (one attribute write
    per transaction): a call that fails after its count moved failed at or after a COMMIT,
    so some of what it did may have committed."""
    event.listen(engine, "commit", _committing)


def _committing(connection: Connection) -> None:
    setattr(connection, _COMMITS, getattr(connection, _COMMITS, 0) + 1)


@dataclass
class InDoubt(Exception):
    """A call failed while committing: it may or may not have committed.

    ``witness(connection)`` (if given) waits for the first attempt's transaction to end
    and returns its result, or NOT_COMMITTED. ``rerun`` holds the keyword arguments that
    make running the call again safe (for example the idempotency key it was recorded
    under), or None if running it again might do it twice. ``key`` is what the caller
    retries with when none of this can be done.
    """

    key: str | None = None
    witness: Callable[[Connection], Any] | None = None
    rerun: dict[str, Any] | None = None

    def __str__(self) -> str:
        return "the connection failed while committing"


NOT_COMMITTED: Any = object()


def _driver_error(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def _codes(error: BaseException) -> tuple[str | None, int | None]:
    """The SQLSTATE (PostgreSQL; PyMySQL gives one too) and the error number (MySQL/
    MariaDB, SQLite) of ``error``; PostgreSQL's drivers give no number."""
    orig = _driver_error(error)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(orig, sqlite3.Error):
        return None, getattr(orig, "sqlite_errorcode", None)
    args = getattr(orig, "args", ())
    number = args[0] if args and isinstance(args[0], int) else None
    return (sqlstate if isinstance(sqlstate, str) else None), number


def retryable(error: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back whole."""
    sqlstate, number = _codes(error)
    if isinstance(_driver_error(error), sqlite3.Error):
        return False
    return sqlstate in _PG_RETRY or number in _MYSQL_RETRY


def _busy(error: BaseException) -> bool:
    if isinstance(error, PoolTimeoutError):
        return True
    sqlstate, number = _codes(error)
    orig = _driver_error(error)
    if isinstance(orig, sqlite3.Error):
        return number in _SQLITE_BUSY or "database is locked" in str(orig)
    return sqlstate in _PG_BUSY or number in _MYSQL_BUSY


def _first_line(error: BaseException) -> str:
    text = str(_driver_error(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unavailable(error: BaseException) -> GovernanceUnavailableError:
    """The documented error for a database failure (the caller chains ``error``)."""
    if isinstance(error, PoolTimeoutError):
        return GovernanceBusyError(
            "no database connection was free in time, so nothing was decided or written "
            f"(fail closed): {_first_line(error)}. Give the pool more connections "
            "(ControlPlane.open(pool_size=…, max_overflow=…)) or call with fewer threads"
        )
    if _busy(error):
        return GovernanceBusyError(
            "the database stayed locked past the lock timeout, so nothing was decided or "
            f"written (fail closed): {_first_line(error)}. Retry"
        )
    if retryable(error):
        return GovernanceBusyError(
            f"the call lost {ATTEMPTS} deadlocks or conflicts in a row, so nothing was "
            f"decided or written (fail closed): {_first_line(error)}. Retry"
        )
    return GovernanceUnavailableError(
        "the database failed or could not be reached, so nothing was decided or written "
        f"(fail closed): {_first_line(error)}"
    )


class Boundary:
    """What counts as a database failure for one control plane: SQLAlchemy's errors, its
    drivers' own (some reach us unwrapped, e.g. from a SQLite BEGIN hook), and a
    connection that broke under the driver."""

    def __init__(self, *dialects: Any) -> None:
        driver_errors = {
            error
            for dialect in dialects
            if (error := getattr(getattr(dialect, "loaded_dbapi", None), "Error", None)) is not None
        }
        self.errors: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            sqlite3.Error,
            ConnectionError,
            *driver_errors,
        )
        self._unsettling: tuple[type[BaseException], ...] = (InDoubt, *self.errors)

    def run(
        self,
        on_connection: Callable[[Callable[[Connection], R]], R],
        operation: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        repeatable: bool = False,
    ) -> R:
        """Run one call of ``operation`` through ``on_connection`` (which runs a function
        on a connection of its choice) with every failure translated; settle a failure
        while committing on a second connection."""
        try:
            return on_connection(partial(call, operation, args, kwargs, repeatable))
        except Exception as error:
            doubt = self._doubt(error)
        try:
            return on_connection(partial(settle_doubt, doubt, operation, args, kwargs))
        except Exception as error:
            raise self._unsettled(doubt, error) from error

    async def run_async(
        self,
        on_connection: Callable[[Callable[[Connection], R]], Awaitable[R]],
        operation: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        repeatable: bool = False,
    ) -> R:
        """:meth:`run` for a caller that awaits its connections (the same two steps)."""
        try:
            return await on_connection(partial(call, operation, args, kwargs, repeatable))
        except Exception as error:
            doubt = self._doubt(error)
        try:
            return await on_connection(partial(settle_doubt, doubt, operation, args, kwargs))
        except Exception as error:
            raise self._unsettled(doubt, error) from error

    def _doubt(self, error: Exception) -> InDoubt:
        """What the first attempt's ``error`` leaves to settle; every other failure is
        raised: ACP's own as it is, a database failure as GovernanceUnavailableError."""
        if isinstance(error, InDoubt):
            if error.witness is None and error.rerun is None:
                raise outcome_unknown(error, error.__cause__) from (error.__cause__ or error)
            return error
        if isinstance(error, self.errors) and not isinstance(error, ControlPlaneError):
            raise unavailable(error) from error
        raise error

    def _unsettled(self, doubt: InDoubt, error: Exception) -> Exception:
        """The error to raise when settling ``doubt`` failed with ``error``."""
        if isinstance(error, self._unsettling) and not isinstance(error, ControlPlaneError):
            return unsettled(doubt, error)
        return error

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Let ACP's own errors through; turn every database failure into ours."""
        try:
            yield
        except ControlPlaneError:
            raise
        except InDoubt as doubt:
            raise outcome_unknown(doubt, doubt.__cause__) from (doubt.__cause__ or doubt)
        except self.errors as error:
            raise unavailable(error) from error


def outcome_unknown(doubt: InDoubt, cause: BaseException | None) -> OutcomeUnknownError:
    reason = "" if cause is None else f": {_first_line(cause)}"
    if doubt.key is not None:
        advice = (
            f"retry the same call with idempotency_key={doubt.key!r}: it returns the first "
            "result if that committed, and is never charged twice"
        )
    elif doubt.rerun is not None:
        advice = "repeating the call is safe: it changes nothing twice"
    else:
        advice = "check whether the change was made (read it back) before repeating the call"
    return OutcomeUnknownError(
        f"the connection failed while the call was committing and ACP could not find out "
        f"whether it committed{reason}; {advice}",
        key=doubt.key,
    )


def call(
    operation: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    repeatable: bool,
    connection: Connection,
) -> R:
    """Run ``operation(connection, *args, **kwargs)``; repeat it after a deadlock or a
    serialization failure (at most ATTEMPTS runs). A database failure at or after one of
    its COMMITs raises InDoubt: that COMMIT, or an earlier transaction of the same call,
    may have committed."""
    for attempt in range(1, ATTEMPTS + 1):
        commits = getattr(connection, _COMMITS, 0)
        try:
            return operation(connection, *args, **kwargs)
        except DBAPIError as error:
            # SQLAlchemy wraps every failure of a COMMIT in a DBAPIError.
            if getattr(connection, _COMMITS, 0) != commits:
                raise InDoubt(rerun={} if repeatable else None) from error
            if attempt == ATTEMPTS or not retryable(error):
                raise
            log.info("ACP: %s lost a deadlock or conflict; running it again", operation.__name__)
    raise AssertionError("unreachable")


def settle_doubt(
    doubt: InDoubt,
    operation: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    connection: Connection,
) -> R:
    """On a fresh connection: the real result of a call whose commit failed. The witness
    says whether it committed; a call that did not, or that can safely run twice (a keyed
    one finds its first result), runs again. Otherwise the outcome stays unknown."""
    if doubt.witness is not None:
        found = doubt.witness(connection)
        if found is not NOT_COMMITTED:
            return found  # type: ignore[no-any-return]
        return call(operation, args, kwargs, False, connection)
    assert doubt.rerun is not None  # Boundary settles only a doubt that can be
    return call(operation, args, {**kwargs, **doubt.rerun}, False, connection)


def unsettled(doubt: InDoubt, error: BaseException) -> OutcomeUnknownError:
    """Settling ``doubt`` failed with ``error``: the outcome is unknown. If the call ran
    again and that run's commit failed too, its doubt is the one to report."""
    if isinstance(error, InDoubt):
        return outcome_unknown(error, error.__cause__)
    return outcome_unknown(doubt, error)
