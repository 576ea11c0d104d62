"""Core statements compiled once and run straight on the driver's cursor.

SQLite answers in microseconds, so there SQLAlchemy's per-execution machinery is most
of a governed decision's cost. The hot statements stay SQLAlchemy Core constructs
(defined once in store/); this only skips re-entering the execution pipeline, using
the compiled statement's own bind and result processors, and maps driver errors to
SQLAlchemy's exception classes like a normal execution would.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable


class Prepared:
    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.positiontup is None:
            raise ValueError("only positional paramstyles are supported")
        self.sql: str = compiled.string
        defaults = compiled.construct_params(_check=False)
        processors = compiled._bind_processors
        self._binds: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (name, defaults.get(name), processors.get(name)) for name in compiled.positiontup
        ]
        self.keys: list[str] = [column[0] for column in compiled._result_columns]
        self._results = [
            column[3]._cached_result_processor(dialect, None) for column in compiled._result_columns
        ]
        self._dbapi_error = dialect.loaded_dbapi.Error

    def execute(self, connection: Connection, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        values = []
        for name, default, process in self._binds:
            value = parameters.get(name, default)
            values.append(value if process is None else process(value))
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, values)
            rows = cursor.fetchall() if self.keys else []
        except self._dbapi_error as error:
            raise DBAPIError.instance(
                self.sql, values, error, self._dbapi_error, dialect=connection.dialect
            ) from error
        finally:
            cursor.close()
        return [
            {
                key: value if process is None else process(value)
                for key, process, value in zip(self.keys, self._results, row, strict=True)
            }
            for row in rows
        ]


@lru_cache(maxsize=128)
def prepared(statement: Executable, dialect: Dialect) -> Prepared:
    return Prepared(statement, dialect)
