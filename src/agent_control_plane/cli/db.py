"""``acp db``: ACP's own migrations, one plain function per verb."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    ExitCode,
    JsonOption,
    Target,
    connected,
    console,
    emit_json,
    exit_code_for,
    fail,
    located,
    migrator_for,
    print_table,
    targeted,
)
from agent_control_plane.errors import ControlPlaneError
from agent_control_plane.migrations.grants import Grantee
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import resolve_layout

db_app = typer.Typer(help="Create, upgrade and inspect ACP's tables.", no_args_is_help=True)


@db_app.command()
@targeted
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database: Target = THE_DEFAULT_TARGET,
    grant_to: Annotated[
        str | None,
        typer.Option(
            "--grant-to",
            help="Then grant this role (PostgreSQL) or account (MySQL/MariaDB, NAME[@HOST]) "
            "what the application needs: row access to ACP's tables, but only to read and "
            "add events (never change or delete one), read-only on the version table, no DDL.",
        ),
    ] = None,
    grant_maintenance_to: Annotated[
        str | None,
        typer.Option(
            "--grant-maintenance-to",
            help="Then grant this role or account what pruning needs as well: deleting old "
            "events and writing prune anchors (run `acp worker --event-retention` as it).",
        ),
    ] = None,
) -> None:
    """Upgrade ACP's tables (under a database lock; safe with many workers)."""
    roles = {False: grant_to, True: grant_maintenance_to}
    try:
        backend = located(database)[0].get_backend_name()
        for role in roles.values():
            if role is not None:
                Grantee.parse(backend, role)
    except ControlPlaneError as exc:
        raise fail(str(exc)) from exc
    granted: list[str] = []
    with migrator_for(database) as (migrator, engine):
        with engine.connect() as connection:
            applied = migrator.upgrade(connection, revision)
        for maintenance, role in roles.items():
            if role is not None:
                with engine.connect() as connection:
                    granted += migrator.grant(connection, role, maintenance=maintenance)
        with engine.connect() as connection:
            current = migrator.current(connection)
    for step in applied:
        console.print(f"applied {step}")
    console.print(f"ACP schema at {', '.join(current) or 'base'} ({migrator.layout.describe()})")
    for statement in granted:
        console.print(statement, highlight=False)
    if grant_to is not None:
        console.print(f"granted {grant_to} row access to ACP's tables (no DDL; events: add only)")
    if grant_maintenance_to is not None:
        console.print(
            f"granted {grant_maintenance_to} row access to ACP's tables and pruning (no DDL)"
        )


@db_app.command()
@targeted
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops everything).")],
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Downgrade ACP's tables to REVISION."""
    with connected(database) as (migrator, connection):
        applied = migrator.downgrade(connection, revision)
    for step in applied:
        console.print(f"applied {step}")


@db_app.command()
@targeted
def stamp(
    revision: Annotated[str, typer.Argument(help="Revision to record, without running it.")],
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Record REVISION in ACP's version table without running any migration."""
    with connected(database) as (migrator, connection):
        migrator.stamp(connection, revision)
    console.print(f"stamped {revision}")


@db_app.command()
@targeted
def current(
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Show the database's ACP revision; exit 1 if it is not the package's head."""
    with connected(database) as (migrator, connection):
        revisions = migrator.current(connection)
    heads = migrator.heads()
    at_head = set(revisions) == set(heads)
    if as_json:
        emit_json({"current": list(revisions), "heads": list(heads), "up_to_date": at_head})
    else:
        status = "up to date" if at_head else f"head is {', '.join(heads)}"
        console.print(f"{', '.join(revisions) or 'base (no ACP tables)'} ({status})")
    if not at_head:
        raise typer.Exit(ExitCode.FAILED)


@db_app.command()
def history(as_json: JsonOption = False) -> None:
    """List ACP's revisions, newest first."""
    migrator = Migrator(resolve_layout("sqlite"))
    rows: list[dict[str, Any]] = []
    for script in migrator.history():
        down = script.down_revision
        revises = [down] if isinstance(down, str) else list(down or ())
        rows.append({"revision": script.revision, "revises": revises, "doc": str(script.doc)})
    if as_json:
        emit_json(rows)
        return
    print_table(
        ("revision", "revises", "description"),
        ((row["revision"], ", ".join(row["revises"]) or "-", row["doc"]) for row in rows),
    )


@db_app.command()
@targeted
def check(
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Compare the database with this package's models; exit 1 on any drift, 3 if the
    schema is not current."""
    with connected(database) as (migrator, connection):
        try:
            migrator.verify(
                connection, url=connection.engine.url.render_as_string(hide_password=True)
            )
        except ControlPlaneError as exc:
            if as_json:
                emit_json({"ok": False, "error": str(exc), "differences": []})
            raise fail(str(exc), exit_code_for(exc)) from exc
        differences = migrator.drift(connection)
    if as_json:
        emit_json({"ok": not differences, "differences": [repr(d) for d in differences]})
    elif differences:
        console.print(f"[bold red]{len(differences)} difference(s)[/] between database and models:")
        for difference in differences:
            console.print(f"  {difference!r}", highlight=False)
    else:
        console.print("No drift: ACP's tables match this package's models.")
    if differences:
        raise typer.Exit(ExitCode.FAILED)


@db_app.command()
@targeted
def sql(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Print the DDL to create ACP's tables (offline: nothing connects), for a DBA."""
    parsed, layout = located(database)
    typer.echo(Migrator(layout).sql(parsed.get_backend_name(), revision), nl=False)
