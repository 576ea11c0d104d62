"""Core statements compiled once and run straight on the driver's cursor.

A governed decision is a handful of tiny statements, so SQLAlchemy's per-execution
pipeline (cache lookup, execution context, result metadata) was a large part of its
cost. The hot statements stay SQLAlchemy Core constructs, defined once in store/; this
only skips re-entering that pipeline. It uses the compiled statement's own bind
processors, builds result processors from the cursor's description exactly as a
CursorResult would, and maps driver errors to SQLAlchemy's exception classes.
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

Processor = Callable[[Any], Any] | None


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
        self._binds: list[tuple[str, Any, Processor]] = [
            (name, defaults.get(name), processors.get(name)) for name in names
        ]
        self.keys: list[str] = [column[0] for column in compiled._result_columns]
        self._types = [column[3] for column in compiled._result_columns]
        self._results: list[Processor] | None = None
        self._dialect = dialect
        self._dbapi_error = dialect.loaded_dbapi.Error

    def _result_processors(self, description: Any) -> list[Processor]:
        if self._results is None:
            self._results = [
                type_._cached_result_processor(self._dialect, column[1])
                for type_, column in zip(self._types, description, strict=True)
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
        if self._positional:
            return [
                get(name, default) if process is None else process(get(name, default))
                for name, default, process in self._binds
            ]
        return {
            name: get(name, default) if process is None else process(get(name, default))
            for name, default, process in self._binds
        }

    def _run(
        self,
        connection: Connection,
        parameters: dict[str, Any],
        *,
        fetch: bool,
        lastrowid: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        values = self._bind(parameters)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, values)
            count = cursor.lastrowid if lastrowid else cursor.rowcount
            if not (fetch and self.keys):
                return [], count
            rows = cursor.fetchall()
            processors = self._result_processors(cursor.description)
        except self._dbapi_error as error:
            raise DBAPIError.instance(
                self.sql, values, error, self._dbapi_error, dialect=connection.dialect
            ) from error
        finally:
            cursor.close()
        keys = self.keys
        return [
            {
                key: value if process is None else process(value)
                for key, process, value in zip(keys, processors, row, strict=True)
            }
            for row in rows
        ], count


@lru_cache(maxsize=128)
def prepared(statement: Executable, dialect: Dialect) -> Prepared:
    return Prepared(statement, dialect)


def fetch(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of a cached statement, as mappings: straight on the driver where the runtime
    allows it (SQLite, PostgreSQL), through SQLAlchemy's pipeline elsewhere."""
    if runtime.direct_execution:
        return prepared(statement, connection.dialect).execute(connection, parameters)
    return [dict(row._mapping) for row in connection.execute(statement, parameters)]


def execute(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> int:
    """Run a cached statement that returns no rows; return how many rows it matched."""
    if runtime.direct_execution:
        return prepared(statement, connection.dialect).execute_count(connection, parameters)
    return int(connection.execute(statement, parameters).rowcount)


def insert_id(
    connection: Connection, runtime: Runtime, statement: Executable, parameters: dict[str, Any]
) -> int:
    """Run a cached INSERT of one row; return the id the database gave it (SQLite, MySQL)."""
    if runtime.direct_execution:
        return prepared(statement, connection.dialect).execute_lastrowid(connection, parameters)
    new_id = connection.execute(statement, parameters).lastrowid
    assert new_id is not None
    return int(new_id)
