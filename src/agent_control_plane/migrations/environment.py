"""The body of ACP's env.py: configure alembic for one layout, online or offline."""

from __future__ import annotations

from typing import Any

from alembic.environment import EnvironmentContext
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from agent_control_plane.migrations.ddl import running_for
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.ownership import Ownership
from agent_control_plane.schema.tables import build_tables

GUARD_PLUGIN = "alembic.autogenerate.agent_control_plane"
# ACP compares only its own objects, so the host guard (which hides them) must stay out.
AUTOGENERATE_PLUGINS = ["alembic.autogenerate.*", f"~{GUARD_PLUGIN}"]


def context_options(layout: Layout) -> dict[str, Any]:
    """Options shared by migrations, ``acp db check`` and revision autogeneration."""
    ours = Ownership.of([layout])
    return {
        "target_metadata": build_tables(layout).metadata,
        "version_table": layout.version_table,
        "version_table_schema": layout.schema,
        "include_schemas": layout.schema is not None,
        "include_object": lambda obj, name, type_, reflected, compare_to: ours.owns_object(
            obj, name, type_
        ),
        "include_name": lambda name, type_, parent: (
            (type_ == "schema" and name in (None, layout.schema))
            or (type_ != "schema" and ours.owns_name(name, type_, parent))
        ),
        "autogenerate_plugins": AUTOGENERATE_PLUGINS,
        "compare_type": True,
        "render_as_batch": True,
    }


def _verb(step: Any) -> str:
    if step.is_stamp:
        return "stamp"
    return "upgrade" if step.is_upgrade else "downgrade"


def run(context: EnvironmentContext) -> None:
    config = context.config
    layout: Layout = config.attributes["acp_layout"]
    options = context_options(layout)
    with running_for(layout):
        if context.is_offline_mode():
            context.configure(
                dialect_name=config.attributes["acp_dialect"],
                literal_binds=True,
                output_buffer=config.attributes.get("acp_output"),
                **options,
            )
            with context.begin_transaction():
                if layout.owns_schema:
                    context.execute(CreateSchema(str(layout.schema), if_not_exists=True))
                context.run_migrations()
            return
        connection: Connection = config.attributes["connection"]
        applied: list[str] = config.attributes.setdefault("acp_applied", [])
        # Alembic creates its version table before the first revision runs, so
        # the schema that holds it must exist first.
        if layout.owns_schema:
            connection.execute(CreateSchema(str(layout.schema), if_not_exists=True))
        context.configure(
            connection=connection,
            on_version_apply=lambda ctx, step, heads, run_args: applied.append(
                f"{_verb(step)} {step.up_revision_id}"
            ),
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
