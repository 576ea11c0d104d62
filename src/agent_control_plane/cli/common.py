"""Options, exit codes and output helpers shared by the ``acp`` commands."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from agent_control_plane.config import resolve_location
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
from agent_control_plane.schema.layout import Layout, resolve_layout

R = TypeVar("R")


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


@dataclass(frozen=True, slots=True)
class Target:
    """The ACP database a command works on: its --url, --schema and --table-prefix (None:
    the ACP_* setting, else the default)."""

    url: str | None = None
    schema: str | None = None
    table_prefix: str | None = None


_TARGET_OPTIONS = (
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOption),
    inspect.Parameter(
        "schema", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SchemaOption
    ),
    inspect.Parameter(
        "table_prefix", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PrefixOption
    ),
)
THE_DEFAULT_TARGET = Target()


def targeted(command: Callable[..., R]) -> Callable[..., R]:
    """Give ``command`` the options --url, --schema and --table-prefix, handed to it as
    one ``database: Target`` (Typer reads the signature this sets). The three options
    stand where ``database`` stands, so ``--help`` lists them in the command's own order."""
    hints = get_type_hints(command, include_extras=True)
    own = inspect.signature(command).parameters
    if "database" not in own:
        raise TypeError(f"@targeted {command.__name__} needs a parameter database: Target")
    parameters: list[inspect.Parameter] = []
    for name, parameter in own.items():
        if name == "database":
            parameters += _TARGET_OPTIONS
        else:
            # Keyword-only, as Typer passes them: the options may then sit between
            # parameters with and without defaults.
            parameters.append(
                parameter.replace(
                    kind=inspect.Parameter.KEYWORD_ONLY,
                    annotation=hints.get(name, parameter.annotation),
                )
            )

    @functools.wraps(command)
    def run(
        *args: Any,
        url: str | None = None,
        schema: str | None = None,
        table_prefix: str | None = None,
        **kwargs: Any,
    ) -> R:
        return command(*args, database=Target(url, schema, table_prefix), **kwargs)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return run


def located(target: Target) -> tuple[URL, Layout]:
    """The target's URL and table layout (arguments, else ACP_* settings), validated
    before anything connects."""
    try:
        location = resolve_location(target.url, target.schema, target.table_prefix)
        assert location.url is not None
        parsed = database_url(location.url)
        layout = resolve_layout(
            parsed.get_backend_name(),
            schema=location.schema,
            table_prefix=location.table_prefix,
        )
    except ControlPlaneError as exc:
        raise fail(str(exc)) from exc
    return parsed, layout


@contextmanager
def migrator_for(target: Target) -> Iterator[tuple[Migrator, Engine]]:
    """A Migrator and an engine for the target."""
    parsed, layout = located(target)
    engine = create_sync_engine(parsed)
    try:
        with handled():
            yield Migrator(layout), governed_engine(engine)
    finally:
        engine.dispose()


@contextmanager
def connected(target: Target) -> Iterator[tuple[Migrator, Connection]]:
    """Like :func:`migrator_for`, with one fresh connection."""
    with migrator_for(target) as (migrator, engine), engine.connect() as conn:
        yield migrator, conn


@contextmanager
def opened(target: Target, *, pool_size: int | None = None) -> Iterator[ControlPlane]:
    """ACP opened with ``migrate="verify"``: the CLI never migrates behind your back."""
    with handled():
        control_plane = ControlPlane.open(
            target.url,
            schema=target.schema,
            table_prefix=target.table_prefix,
            migrate="verify",
            pool_size=pool_size,
        )
    try:
        with handled():
            yield control_plane
    finally:
        control_plane.close()


def cell(value: Any) -> str:
    """How a table shows a value: empty for None, times to the second, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    show_header: bool = True,
) -> None:
    """Print one Rich table: every ``acp`` listing goes through here."""
    table = Table(*columns, title=title, show_header=show_header)
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console.print(table)
