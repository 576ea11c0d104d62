"""Core statements compiled once and run straight on the driver's cursor.

A governed decision is a handful of tiny statements, so SQLAlchemy's per-execution
pipeline (cache lookup, execution context, result metadata) was a large part of its
cost. The hot statements stay SQLAlchemy Core constructs, defined once in store/; this
only skips re-entering that pipeline. It uses the compiled statement's own bind
processors, builds result processors from the cursor's description exactly as a
CursorResult would, and maps driver errors to SQLAlchemy's exception classes.

Statements sent this way pass no ``before_cursor_execute`` / ``after_cursor_execute`` event,
so where the host listens to those (OpenTelemetry's SQLAlchemy instrumentation, ``echo``,
its own hooks) ACP uses SQLAlchemy's pipeline instead, and the host sees every statement.
It relies on compiled statements' private attributes: ``pyproject.toml`` bounds SQLAlchemy
below the next minor version, and ``tests/unit/test_prepared_internals.py`` fails loudly if
they change.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

from agent_control_plane.runtime import Runtime


class Prepared:
    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self._positional = compiled.positiontup is not None
        # Positional styles repeat a name once per use; named styles bind each name once.
        names = (
            list(compiled.positiontup)
            if self._positional
            else list(dict.fromkeys(compiled.bind_names.values()))
        )
        defaults = compiled.construct_params(_check=False)
        processors = compiled._bind_processors
        self._names = names
        self._defaults = [defaults.get(name) for name in names]
        # Most parameters need no conversion: only these positions go through a processor.
        self._bind_processors: list[tuple[int, Callable[[Any], Any]]] = [
            (index, process)
            for index, name in enumerate(names)
            if (process := processors.get(name)) is not None
        ]
        self.keys: list[str] = [column[0] for column in compiled._result_columns]
        self._types = [column[3] for column in compiled._result_columns]
        self._results: list[tuple[str, Callable[[Any], Any]]] | None = None
        self._dialect = dialect
        self._dbapi_error = dialect.loaded_dbapi.Error

    def _result_processors(self, description: Any) -> list[tuple[str, Callable[[Any], Any]]]:
        """The result columns that need a conversion, with their processors."""
        if self._results is None:
            processors = [
                type_._cached_result_processor(self._dialect, column[1])
                for type_, column in zip(self._types, description, strict=True)
            ]
            self._results = [
                (key, process)
                for key, process in zip(self.keys, processors, strict=True)
                if process is not None
            ]
        return self._results

    def execute_count(self, connection: Connection, parameters: dict[str, Any]) -> int:
        """Run a statement without result rows; return how many rows it matched."""
        return self._run(connection, parameters, fetch=False)[1]

    def execute(self, connection: Connection, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return self._run(connection, parameters, fetch=True)[0]

    def execute_lastrowid(self, connection: Connection, parameters: dict[str, Any]) -> int:
        """Run an INSERT; return the id the database gave its row."""
        return self._run(connection, parameters, fetch=False, lastrowid=True)[1]

    def _bind(self, parameters: dict[str, Any]) -> Any:
        get = parameters.get
        values = list(map(get, self._names, self._defaults))
        for index, process in self._bind_processors:
            values[index] = process(values[index])
        return values if self._positional else dict(zip(self._names, values, strict=True))

    def _run(
        self,
        connection: Connection,
        parameters: dict[str, Any],
        *,
        fetch: bool,
        lastrowid: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        values = self._bind(parameters)
        dbapi_connection: Any = connection.connection.dbapi_connection
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, values)
            count = cursor.lastrowid if lastrowid else cursor.rowcount
            if not (fetch and self.keys):
                return [], count
            rows = cursor.fetchall()
            processors = self._result_processors(cursor.description)
        except self._dbapi_error as error:
            dropped = self._dialect.is_disconnect(error, dbapi_connection, cursor)
            if dropped:
                # As SQLAlchemy's own execution does: never hand this connection out again.
                connection.invalidate(error)
            raise DBAPIError.instance(
                self.sql,
                values,
                error,
                self._dbapi_error,
                connection_invalidated=dropped,
                dialect=connection.dialect,
            ) from error
        finally:
            cursor.close()
        keys = self.keys
        mappings = [dict(zip(keys, row, strict=True)) for row in rows]
        for mapping in mappings:
            for key, process in processors:
                mapping[key] = process(mapping[key])
        return mappings, count


@lru_cache(maxsize=128)
def prepared(statement: Executable, dialect: Dialect) -> Prepared:
    return Prepared(statement, dialect)


def direct(connection: Connection, runtime: Runtime) -> bool:
    """Whether to send statements straight to the driver: where the runtime allows it
    (SQLite, PostgreSQL) and no listener of the host watches statements being sent."""
    if not runtime.capabilities.direct_execution:
        return False
    dispatch = connection.dispatch
    return not (dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def fetch(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of a cached statement, as mappings: straight on the driver where
    :func:`direct` allows it, through SQLAlchemy's pipeline elsewhere."""
    if direct(connection, runtime):
        return prepared(statement, connection.dialect).execute(connection, parameters)
    return [dict(row._mapping) for row in connection.execute(statement, parameters)]


def execute(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> int:
    """Run a cached statement that returns no rows; return how many rows it matched."""
    if direct(connection, runtime):
        return prepared(statement, connection.dialect).execute_count(connection, parameters)
    return int(connection.execute(statement, parameters).rowcount)


def insert_id(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> int:
    """Run a cached INSERT of one row; return the id the database gave it (SQLite, MySQL)."""
    if direct(connection, runtime):
        return prepared(statement, connection.dialect).execute_lastrowid(connection, parameters)
    new_id = connection.execute(statement, parameters).lastrowid
    assert new_id is not None
    return int(new_id)
