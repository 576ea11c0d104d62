"""Host-managed mode: run ACP's revisions from inside the host's own alembic revision.

For teams whose DBA wants every DDL statement in the host's migration history::

    # in a revision of the host's alembic project
    from agent_control_plane.alembic import host

    def upgrade():
        host.upgrade(op, to="acp_0001")

    def downgrade():
        host.downgrade(op, to="base")

ACP's revisions run through the host's ``op`` (no nested alembic command), and ACP
records its revision in its own version table, so ``migrate="verify"`` at startup
still knows the schema is current. Pin ``to=`` to a revision id in a host revision:
"head" moves when the package is upgraded, and a host revision must not.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.schema import CreateSchema

from agent_control_plane.migrations.ddl import running_for
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import Layout, resolve_layout


def _layout(op: Operations, schema: str | None, table_prefix: str | None) -> Layout:
    return resolve_layout(op.get_context().dialect.name, schema=schema, table_prefix=table_prefix)


def _version_context(op: Operations, layout: Layout) -> MigrationContext:
    host = op.get_context()
    opts: dict[str, Any] = {
        "version_table": layout.version_table,
        "version_table_schema": layout.schema,
    }
    if host.as_sql:
        opts.update(as_sql=True, output_buffer=host.output_buffer, literal_binds=True)
        return MigrationContext.configure(dialect_name=host.dialect.name, opts=opts)
    return MigrationContext.configure(connection=host.connection, opts=opts)


def _current(version_context: MigrationContext, assumed: str | None) -> tuple[str, ...]:
    if version_context.as_sql:
        # Offline (--sql) there is no database to ask: the caller states the start.
        return () if assumed in (None, "base") else (str(assumed),)
    return tuple(version_context.get_current_heads())


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
    version_context = _version_context(op, layout)
    current = _current(version_context, from_revision)
    pending = list(migrator.scripts.iterate_revisions(to, current or "base"))
    pending.reverse()
    with running_for(layout):
        if layout.owns_schema:
            op.execute(CreateSchema(str(layout.schema), if_not_exists=True))
        for script in pending:
            script.module.upgrade()
        if pending:
            if version_context.as_sql and not current:
                version_context._ensure_version_table()
            version_context.stamp(migrator.scripts, pending[-1].revision)
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
    version_context = _version_context(op, layout)
    current = _current(version_context, from_revision)
    if not current:
        return []
    pending = list(migrator.scripts.iterate_revisions(current, to))
    with running_for(layout):
        for script in pending:
            script.module.downgrade()
        version_context.stamp(migrator.scripts, to)
    return [script.revision for script in pending]
