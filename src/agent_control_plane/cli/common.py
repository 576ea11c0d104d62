"""Options and helpers shared by the ``acp`` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from agent_control_plane.config import Settings
from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.engine import create_sync_engine, database_url, governed_engine
from agent_control_plane.errors import ConfigurationError, ControlPlaneError
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import resolve_layout

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


def fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def migrator_for(
    url: str | None, schema: str | None, table_prefix: str | None
) -> Iterator[tuple[Migrator, Engine]]:
    """Resolve URL and layout (validated before connecting) and yield a Migrator + engine."""
    settings = Settings()
    try:
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
        yield Migrator(layout), governed_engine(engine)
    except ControlPlaneError as exc:
        raise fail(str(exc), 1) from exc
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
    try:
        control_plane = ControlPlane.open(
            url, schema=schema, table_prefix=table_prefix, migrate="verify"
        )
    except ConfigurationError as exc:
        raise fail(str(exc)) from exc
    except ControlPlaneError as exc:
        raise fail(str(exc), 1) from exc
    try:
        yield control_plane
    except ControlPlaneError as exc:
        raise fail(str(exc), 1) from exc
    finally:
        control_plane.close()
