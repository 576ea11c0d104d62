"""Options, exit codes and output helpers shared by the ``acp`` commands."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from agent_control_plane.config import load_settings
from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.engine import create_sync_engine, database_url, governed_engine
from agent_control_plane.errors import (
    ConfigurationError,
    ControlPlaneError,
    GovernanceUnavailableError,
    InvalidInputError,
    McpServerError,
    SchemaNotCurrentError,
)
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import resolve_layout


class ExitCode(IntEnum):
    """What ``acp`` exits with: the one place these numbers are defined."""

    OK = 0
    FAILED = 1
    USAGE = 2
    UNAVAILABLE = 3
    SERVER = 4

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success: done, and every check passed",
    ExitCode.FAILED: (
        "a check failed or the answer is no: drift, tampering, a revision not at head, "
        "a record not found, a ticket decided by someone else, an invalid policy file"
    ),
    ExitCode.USAGE: "bad options or arguments (Typer's own code too); nothing was done",
    ExitCode.UNAVAILABLE: (
        "the database cannot be reached, or its ACP schema is not current "
        "(run the acp db upgrade command the message names)"
    ),
    ExitCode.SERVER: (
        "acp mcp-proxy: the MCP server it runs did not start, or stopped while it served"
    ),
}


# What a database that cannot be reached (or dropped the connection) raises.
_UNREACHABLE = OperationalError | InterfaceError


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error a command did not handle itself."""
    if isinstance(error, ConfigurationError | InvalidInputError):
        return ExitCode.USAGE
    if isinstance(error, SchemaNotCurrentError | GovernanceUnavailableError | _UNREACHABLE):
        return ExitCode.UNAVAILABLE
    if isinstance(error, McpServerError):
        return ExitCode.SERVER
    return ExitCode.FAILED


def exit_codes_help() -> str:
    return "Exit codes: " + "; ".join(f"{code.value} {code.meaning}" for code in ExitCode) + "."


JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar on stderr (default: when stderr is a terminal).",
    ),
]

console = Console(soft_wrap=True)
errors = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: $ACP_DATABASE_URL, else sqlite:///acp.db)."),
]
SchemaOption = Annotated[
    str | None, typer.Option("--schema", help="PostgreSQL schema for ACP (default: acp).")
]
PrefixOption = Annotated[
    str | None,
    typer.Option("--table-prefix", help="Prefix for ACP's tables (default: acp_ off PostgreSQL)."),
]


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn ACP and database errors into one line on stderr and the documented exit code."""
    try:
        yield
    except (ControlPlaneError, SQLAlchemyError) as exc:
        message = str(exc).splitlines()[0] if isinstance(exc, SQLAlchemyError) else str(exc)
        if isinstance(exc, _UNREACHABLE | GovernanceUnavailableError):
            message = f"database unavailable: {message}"
        raise fail(message, exit_code_for(exc)) from exc


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: ids, decimals and times as strings, dataclasses as dicts."""
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout."""
    typer.echo(json.dumps(plain(value)))


def emit_json_list(items: Iterable[Any]) -> None:
    emit_json(list(items))


@contextmanager
def progress_bar(
    description: str, enabled: bool | None
) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr, fed by ``update(done, total)``; None when disabled.

    On stderr, so that ``--json`` on stdout stays parseable."""
    if not (errors.is_terminal if enabled is None else enabled):
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=errors.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def migrator_for(
    url: str | None, schema: str | None, table_prefix: str | None
) -> Iterator[tuple[Migrator, Engine]]:
    """Resolve URL and layout (validated before connecting) and yield a Migrator + engine."""
    try:
        settings = load_settings()
        parsed = database_url(url or settings.database_url)
        layout = resolve_layout(
            parsed.get_backend_name(),
            schema=schema if schema is not None else settings.db_schema,
            table_prefix=table_prefix if table_prefix is not None else settings.table_prefix,
        )
    except ControlPlaneError as exc:
        raise fail(str(exc)) from exc
    engine = create_sync_engine(parsed)
    try:
        with handled():
            yield Migrator(layout), governed_engine(engine)
    finally:
        engine.dispose()


@contextmanager
def connected(
    url: str | None, schema: str | None, table_prefix: str | None
) -> Iterator[tuple[Migrator, Connection]]:
    """Like :func:`migrator_for`, with one fresh connection."""
    with migrator_for(url, schema, table_prefix) as (migrator, engine), engine.connect() as conn:
        yield migrator, conn


@contextmanager
def opened(url: str | None, schema: str | None, table_prefix: str | None) -> Iterator[ControlPlane]:
    """ACP opened with ``migrate="verify"``: the CLI never migrates behind your back."""
    with handled():
        control_plane = ControlPlane.open(
            url, schema=schema, table_prefix=table_prefix, migrate="verify"
        )
    try:
        with handled():
            yield control_plane
    finally:
        control_plane.close()
