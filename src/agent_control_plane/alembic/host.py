"""Host-managed mode: run ACP's revisions from inside the host's own alembic revision.

For teams whose DBA wants every DDL statement in the host's migration history::

    # in a revision of the host's alembic project
    from agent_control_plane.alembic import host

    def upgrade():
        host.upgrade(op, to="acp_0001")

    def downgrade():
        host.downgrade(op, to="base", from_revision="acp_0001")

ACP's revisions run through the host's ``op`` (no nested alembic command), and ACP
records its revision in its own version table, so ``migrate="verify"`` at startup
still knows the schema is current. Pin ``to=`` to a revision id in a host revision:
"head" moves when the package is upgraded, and a host revision must not.

Offline (``alembic upgrade --sql``) nothing can ask the database which ACP revision
it is at. A run from the host's base starts ACP at base, and each host revision starts
where the previous one of the run left ACP; a run from a later host revision needs
``from_revision=``: where ACP stands when that revision runs (for an upgrade, the ``to=``
of the host revision before; for a downgrade, its own upgrade's ``to=``). Every downgrade
and every upgrade after the first should state it.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script
from alembic.util import to_tuple
from alembic.util.exc import CommandError
from sqlalchemy.schema import CreateSchema

from agent_control_plane.errors import InvalidInputError, MigrationError
from agent_control_plane.migrations.ddl import running_for
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import Layout, resolve_layout

_VersionTable = tuple[str | None, str]
# Offline, where each host revision of the run left ACP (per version table): the next
# host revision's SQL starts there.
_offline_heads: WeakKeyDictionary[MigrationContext, dict[_VersionTable, tuple[str, ...]]] = (
    WeakKeyDictionary()
)


def _layout(op: Operations, schema: str | None, table_prefix: str | None) -> Layout:
    return resolve_layout(op.get_context().dialect.name, schema=schema, table_prefix=table_prefix)


def _version_context(op: Operations, layout: Layout, current: tuple[str, ...]) -> MigrationContext:
    host = op.get_context()
    opts: dict[str, Any] = {
        "version_table": layout.version_table,
        "version_table_schema": layout.schema,
    }
    if host.as_sql:
        # Told where it starts, a stamp updates the one version row instead of adding one.
        opts.update(
            as_sql=True,
            output_buffer=host.output_buffer,
            literal_binds=True,
            starting_rev=current[0] if current else None,
        )
        return MigrationContext.configure(dialect=host.dialect, opts=opts)
    return MigrationContext.configure(connection=host.connection, opts=opts)


def _current(op: Operations, migrator: Migrator, stated: str | None) -> tuple[str, ...]:
    host = op.get_context()
    if host.as_sql:
        return _offline_start(host, migrator, stated)
    return tuple(_version_context(op, migrator.layout, ()).get_current_heads())


def _offline_start(
    host: MigrationContext, migrator: Migrator, stated: str | None
) -> tuple[str, ...]:
    """Where ACP is when this SQL runs: ``from_revision``, else where the previous host
    revision of this run left it, else base when the run starts at the host's base."""
    layout = migrator.layout
    left = _offline_heads.get(host, {}).get((layout.schema, layout.version_table))
    if stated is not None:
        start = _revision(migrator, stated)
        if left is not None and left != start:
            raise MigrationError(
                f"from_revision={stated!r}, but the host revision before this one leaves ACP "
                f"at {_describe(left)} ({layout.describe()}): correct from_revision."
            )
        return start
    if left is not None:
        return left
    host_start = host.get_current_heads()
    if not host_start:
        return ()
    raise MigrationError(
        f"offline (--sql) from host revision {', '.join(host_start)}, nothing can ask the "
        f"database which ACP revision it is at ({layout.describe()}): pass from_revision= "
        "(where ACP stands when this host revision runs) to host.upgrade or host.downgrade."
    )


def _revision(migrator: Migrator, stated: str) -> tuple[str, ...]:
    try:
        script = migrator.scripts.get_revision(stated)
    except CommandError as exc:
        raise InvalidInputError(
            "from_revision", f"{stated!r}: {exc} (acp db history lists ACP's revisions)"
        ) from exc
    return () if script is None else (script.revision,)


def _describe(heads: tuple[str, ...]) -> str:
    return ", ".join(heads) if heads else "base"


def _remember(op: Operations, layout: Layout, heads: tuple[str, ...]) -> None:
    host = op.get_context()
    if host.as_sql:
        _offline_heads.setdefault(host, {})[(layout.schema, layout.version_table)] = heads


def _run(op: Operations, scripts: list[Script], *, upgrade: bool) -> None:
    for script in scripts:
        step = script.module.upgrade if upgrade else script.module.downgrade
        try:
            step()
        except CommandError as exc:
            if not op.get_context().as_sql:
                raise
            # e.g. SQLite drops a column by rebuilding the table, read from the database.
            raise MigrationError(
                f"offline (--sql), ACP revision {script.revision} cannot be "
                f"{'applied' if upgrade else 'undone'} as SQL: {exc} Run this step against "
                "the database instead (alembic without --sql)."
            ) from exc


def upgrade(
    op: Operations,
    to: str = "head",
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    from_revision: str | None = None,
) -> list[str]:
    """Apply ACP's revisions up to ``to`` with the host's ``op``; return the ids applied.

    ``from_revision`` is only read offline (``alembic upgrade --sql``), where the
    database cannot be asked which ACP revision it is at.
    """
    layout = _layout(op, schema, table_prefix)
    migrator = Migrator(layout)
    current = _current(op, migrator, from_revision)
    version_context = _version_context(op, layout, current)
    pending = list(migrator.scripts.iterate_revisions(to, current or "base"))
    pending.reverse()
    with running_for(layout):
        if layout.owns_schema:
            op.execute(CreateSchema(str(layout.schema), if_not_exists=True))
        _run(op, pending, upgrade=True)
        if pending:
            if version_context.as_sql and not current:
                version_context._ensure_version_table()
            version_context.stamp(migrator.scripts, pending[-1].revision)
    _remember(op, layout, (pending[-1].revision,) if pending else current)
    return [script.revision for script in pending]


def downgrade(
    op: Operations,
    to: str = "base",
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    from_revision: str | None = None,
) -> list[str]:
    """Undo ACP's revisions down to ``to`` with the host's ``op``; return the ids undone."""
    layout = _layout(op, schema, table_prefix)
    migrator = Migrator(layout)
    current = _current(op, migrator, from_revision)
    if not current:
        return []
    version_context = _version_context(op, layout, current)
    pending = list(migrator.scripts.iterate_revisions(current, to))
    with running_for(layout):
        _run(op, pending, upgrade=False)
        version_context.stamp(migrator.scripts, to)
    _remember(op, layout, to_tuple(pending[-1].down_revision, ()) if pending else current)
    return [script.revision for script in pending]
