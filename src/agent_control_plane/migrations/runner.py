"""Apply, inspect and verify ACP's revisions: one function per `acp db` verb."""

from __future__ import annotations

import io
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import IO, Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from agent_control_plane.engine import sync_url_text
from agent_control_plane.errors import InvalidInputError, MigrationError, SchemaNotCurrentError
from agent_control_plane.migrations import grants
from agent_control_plane.migrations.environment import context_options
from agent_control_plane.migrations.grants import Grantee, permission_denied
from agent_control_plane.migrations.locks import locked_transaction
from agent_control_plane.schema.layout import DEFAULT_SCHEMA, DEFAULT_TABLE_PREFIX, Layout
from agent_control_plane.schema.tables import BASELINE_TABLES

SCRIPT_LOCATION = "agent_control_plane:migrations"


@contextmanager
def _refused_targets(target: str) -> Iterator[None]:
    """alembic's refusal of a revision (unknown, or not reachable from here) as the caller's
    bad input, one line, instead of a traceback."""
    try:
        yield
    except CommandError as exc:
        raise InvalidInputError(
            "revision", f"{target!r}: {exc} (acp db history lists ACP's revisions)"
        ) from exc


BASELINE = "acp_0001"


@cache
def _scripts(migrator: Migrator) -> ScriptDirectory:
    """The revision files, read once per process and layout: they are the installed
    package's, and reading them again took a quarter of each ControlPlane.open."""
    return ScriptDirectory.from_config(migrator.config())


@dataclass(frozen=True)
class Migrator:
    """ACP's migrations for one layout. Every method takes a fresh connection."""

    layout: Layout

    def config(self, **attributes: Any) -> Config:
        cfg = Config(stdout=io.StringIO())
        cfg.set_main_option("script_location", SCRIPT_LOCATION)
        cfg.attributes["acp_layout"] = self.layout
        cfg.attributes.update(attributes)
        return cfg

    @property
    def scripts(self) -> ScriptDirectory:
        return _scripts(self)

    def heads(self) -> tuple[str, ...]:
        return tuple(self.scripts.get_heads())

    def history(self) -> list[Script]:
        return list(self.scripts.walk_revisions())

    def current(self, connection: Connection) -> tuple[str, ...]:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": self.layout.version_table,
                "version_table_schema": self.layout.schema,
            },
        )
        heads = tuple(context.get_current_heads())
        if connection.in_transaction():
            connection.rollback()
        return heads

    def upgrade(self, connection: Connection, target: str = "head") -> list[str]:
        """Bring ACP's tables to ``target`` under the migration lock; return what ran."""
        cfg = self.config(connection=connection)
        try:
            with locked_transaction(connection, self.layout):
                if not self._current_in_transaction(connection) and self._has_baseline_tables(
                    connection
                ):
                    # Tables without a version row (created by hand or by create_all): adopt
                    # them at head if they already match the models, else at the baseline,
                    # and migrate forward from there.
                    command.stamp(cfg, "head" if not self._differences(connection) else BASELINE)
                with _refused_targets(target):
                    command.upgrade(cfg, target)
        except DBAPIError as exc:
            if not permission_denied(exc):
                raise
            raise self._not_allowed(connection, exc) from exc
        return list(cfg.attributes.get("acp_applied", []))

    def _not_allowed(self, connection: Connection, error: DBAPIError) -> MigrationError:
        url = connection.engine.url
        # PostgreSQL's DDL is transactional: the refused upgrade rolled back entirely.
        outcome = (
            "Nothing was changed."
            if connection.dialect.name == "postgresql"
            else "Check `acp db current`."
        )
        reason = str(error.orig).strip().splitlines()[0]
        return MigrationError(
            f"the database user {url.username!r} may not change ACP's schema "
            f"({self.layout.describe()}): {reason}. {outcome} Upgrade as the schema owner, "
            f"granting this user what it needs: acp db upgrade --url <owner URL> --grant-to "
            f"{url.username}, and open ACP with migrate='verify'."
        )

    def grant(self, connection: Connection, role: str, *, maintenance: bool = False) -> list[str]:
        """Grant ``role`` row access to ACP's tables (read-only on the version table; on
        events, add only, or with ``maintenance`` also delete, for pruning)."""
        grantee = Grantee.parse(connection.dialect.name, role)
        kind = grants.MAINTENANCE if maintenance else grants.APPLICATION
        return grants.grant(connection, self.layout, grantee, kind)

    def downgrade(self, connection: Connection, target: str) -> list[str]:
        cfg = self.config(connection=connection)
        with locked_transaction(connection, self.layout), _refused_targets(target):
            command.downgrade(cfg, target)
        return list(cfg.attributes.get("acp_applied", []))

    def stamp(self, connection: Connection, target: str) -> None:
        cfg = self.config(connection=connection)
        with locked_transaction(connection, self.layout), _refused_targets(target):
            command.stamp(cfg, target)

    def sql(self, dialect_name: str, target: str = "head", output: IO[str] | None = None) -> str:
        """Render the DDL from an empty database to ``target`` (offline, for a DBA)."""
        buffer = output or io.StringIO()
        cfg = self.config(acp_dialect=dialect_name, acp_output=buffer)
        with _refused_targets(target):
            command.upgrade(cfg, target, sql=True)
        return buffer.getvalue() if isinstance(buffer, io.StringIO) else ""

    def drift(self, connection: Connection) -> list[Any]:
        """Differences between the database and this package's models (empty: none)."""
        try:
            return self._differences(connection)
        finally:
            if connection.in_transaction():
                connection.rollback()

    def _differences(self, connection: Connection) -> list[Any]:
        options = context_options(self.layout)
        context = MigrationContext.configure(connection, opts=options)
        return list(compare_metadata(context, options["target_metadata"]))

    def verify(self, connection: Connection, *, url: str | None = None) -> None:
        """Raise SchemaNotCurrentError unless the database is at this package's head."""
        self.require_current(self.current(connection), url=url)

    def require_current(self, current: tuple[str, ...], *, url: str | None = None) -> None:
        """Raise SchemaNotCurrentError unless ``current`` is this package's head."""
        expected = self.heads()
        if set(current) == set(expected):
            return
        cmd = self.upgrade_command(url)
        found = ", ".join(current) if current else "no ACP tables"
        raise SchemaNotCurrentError(
            f"ACP schema is not current ({self.layout.describe()}): database has {found}, "
            f"this package needs {', '.join(expected)}. Run: {cmd}",
            current=current,
            expected=expected,
            command=cmd,
        )

    def upgrade_command(self, url: str | None) -> str:
        parts = ["acp", "db", "upgrade"]
        if url:
            parts += ["--url", sync_url_text(url)]
        if self.layout.schema not in (None, DEFAULT_SCHEMA):
            parts += ["--schema", str(self.layout.schema)]
        default_prefix = "" if self.layout.schema else DEFAULT_TABLE_PREFIX
        if self.layout.table_prefix != default_prefix:
            parts += ["--table-prefix", self.layout.table_prefix]
        return shlex.join(parts)

    def _current_in_transaction(self, connection: Connection) -> tuple[str, ...]:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": self.layout.version_table,
                "version_table_schema": self.layout.schema,
            },
        )
        return tuple(context.get_current_heads())

    def _has_baseline_tables(self, connection: Connection) -> bool:
        present = set(inspect(connection).get_table_names(schema=self.layout.schema))
        expected = {self.layout.table_name(name) for name in BASELINE_TABLES}
        found = expected & present
        if found and found != expected:
            missing = ", ".join(sorted(expected - present))
            raise MigrationError(
                f"found some ACP tables but not all ({self.layout.describe()}); missing: "
                f"{missing}. Restore them from a backup, or drop the partial set, then retry."
            )
        return bool(found)
