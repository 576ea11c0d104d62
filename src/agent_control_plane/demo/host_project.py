"""A small host application with its own models and its own alembic environment.

``acp demo`` builds one to show ACP beside a host's migrations; the test suite
builds many (one per database and filter variant) and drives them through
alembic's real command API.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from agent_control_plane.schema.layout import resolve_layout
from agent_control_plane.testing import autogenerate_operations

# How the host's env.py may configure autogenerate; "plain" has nothing of ACP.
ENV_VARIANTS = {
    "plain": ("", ""),
    "filter": (
        "from agent_control_plane.alembic import include_acp_tables\n",
        "include_object=include_acp_tables({layout}),",
    ),
    "options": (
        "from agent_control_plane.alembic import acp_autogenerate_options\n",
        "**acp_autogenerate_options({layout}),",
    ),
}


def models_source(
    dialect: str,
    *,
    acp_schema: str | None = None,
    acp_prefix: str | None = None,
    extra_customer_column: bool = False,
    legacy_table: bool = True,
) -> str:
    """The host's models: its own tables, one with a foreign key to ACP's sessions."""
    layout = resolve_layout(dialect, schema=acp_schema, table_prefix=acp_prefix)
    sessions = layout.table_name("sessions")
    schema_arg = f", schema={layout.schema!r}" if layout.schema else ""
    target = f"{layout.schema}.{sessions}" if layout.schema else sessions
    extra = '    Column("email", String(200)),\n' if extra_customer_column else ""
    legacy = (
        'legacy_notes = Table("legacy_notes", metadata, Column("id", Integer, primary_key=True))\n'
        if legacy_table
        else ""
    )
    return (
        "from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, Uuid\n\n"
        "metadata = MetaData()\n\n"
        "# A hand-written stub of ACP's sessions table, so that a foreign key can point at it.\n"
        f'acp_sessions = Table("{sessions}", metadata, Column("id", Uuid, primary_key=True)'
        f"{schema_arg})\n\n"
        'customers = Table(\n    "customers",\n    metadata,\n'
        '    Column("id", Integer, primary_key=True),\n'
        '    Column("name", String(100), nullable=False),\n'
        f"{extra})\n\n"
        'agent_runs = Table(\n    "agent_runs",\n    metadata,\n'
        '    Column("id", Integer, primary_key=True),\n'
        '    Column("customer_id", Integer, ForeignKey("customers.id")),\n'
        f'    Column("acp_session_id", Uuid, ForeignKey("{target}.id")),\n'
        ")\n\n"
        f"{legacy}"
    )


@dataclass
class HostProject:
    """A host project on disk: models.py, alembic.ini and migrations/."""

    root: Path
    url: str
    dialect: str

    @classmethod
    def create(
        cls,
        root: Path,
        url: str,
        *,
        dialect: str,
        variant: str = "plain",
        include_schemas: bool = False,
        acp_schema: str | None = None,
        acp_prefix: str | None = None,
        filter_layout: str = "",
    ) -> HostProject:
        """Lay out the project with alembic's own ``generic`` template, then point its
        env.py at the host's models (the one edit every alembic user makes)."""
        root.mkdir(parents=True, exist_ok=True)
        project = cls(root=root, url=url, dialect=dialect)
        config = Config(str(project.ini_path), stdout=io.StringIO())
        command.init(config, str(project.migrations_dir), template="generic")
        ini = project.ini_path.read_text()
        ini = ini.replace(
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            f"sqlalchemy.url = {url.replace('%', '%%')}",
        )
        project.ini_path.write_text(ini)
        project.write_models(models_source(dialect, acp_schema=acp_schema, acp_prefix=acp_prefix))
        imports, options = ENV_VARIANTS[variant]
        options = options.format(layout=filter_layout)
        if include_schemas:
            options += "include_schemas=True,"
        env = project.env_path.read_text()
        env = env.replace(
            "target_metadata = None",
            imports + "import runpy\n"
            "from pathlib import Path\n\n"
            "target_metadata = runpy.run_path(\n"
            '    str(Path(__file__).resolve().parent.parent / "models.py")\n'
            ')["metadata"]',
        )
        env = env.replace(
            "connection=connection, target_metadata=target_metadata",
            f"connection=connection, target_metadata=target_metadata, {options}",
        )
        project.env_path.write_text(env)
        return project

    @property
    def ini_path(self) -> Path:
        return self.root / "alembic.ini"

    @property
    def migrations_dir(self) -> Path:
        return self.root / "migrations"

    @property
    def env_path(self) -> Path:
        return self.migrations_dir / "env.py"

    @property
    def models_path(self) -> Path:
        return self.root / "models.py"

    def write_models(self, source: str) -> None:
        self.models_path.write_text(source)

    def config(self) -> Config:
        config = Config(str(self.ini_path), stdout=io.StringIO())
        config.set_main_option("script_location", str(self.migrations_dir))
        return config

    def autogenerate_operations(self) -> list[Any]:
        """What ``alembic revision --autogenerate`` would propose, without writing it."""
        return autogenerate_operations(self.config())

    def revision(self, message: str, *, autogenerate: bool = True) -> Path:
        """Write a host revision the way ``alembic revision`` does; return its path."""
        result = command.revision(self.config(), message=message, autogenerate=autogenerate)
        scripts = result if isinstance(result, list) else [result]
        script = scripts[0]
        assert script is not None
        return Path(script.path)

    def write_revision(self, revision_id: str, body_upgrade: str, body_downgrade: str) -> Path:
        """Write a hand-written host revision after the current head."""
        scripts = ScriptDirectory.from_config(self.config())
        down = scripts.get_current_head()
        path = self.migrations_dir / "versions" / f"{revision_id}.py"
        upgrade = textwrap.indent(textwrap.dedent(body_upgrade).strip(), "    ")
        downgrade = textwrap.indent(textwrap.dedent(body_downgrade).strip(), "    ")
        path.write_text(
            f'"""host revision {revision_id}"""\n'
            "from alembic import op\n\n"
            f"revision = {revision_id!r}\n"
            f"down_revision = {down!r}\n"
            "branch_labels = None\n"
            "depends_on = None\n\n\n"
            f"def upgrade():\n{upgrade}\n\n\n"
            f"def downgrade():\n{downgrade}\n"
        )
        return path

    def upgrade(self, target: str = "head") -> None:
        command.upgrade(self.config(), target)

    def downgrade(self, target: str) -> None:
        command.downgrade(self.config(), target)
