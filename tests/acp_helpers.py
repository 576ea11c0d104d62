"""Small helpers shared by the database tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, inspect

from agent_control_plane.engine import create_sync_engine, database_url, governed_engine
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.schema.layout import Layout, resolve_layout
from tests.databases import TestDatabase


@contextmanager
def engine_for(database: TestDatabase) -> Iterator[Engine]:
    engine = create_sync_engine(database_url(database.url))
    try:
        yield governed_engine(engine)
    finally:
        engine.dispose()


def migrator_for(database: TestDatabase, **layout: str) -> Migrator:
    return Migrator(resolve_layout(database.url.get_backend_name(), **layout))


def table_names(engine: Engine, layout: Layout) -> set[str]:
    with engine.connect() as connection:
        inspector = inspect(connection)
        if layout.schema and layout.schema not in inspector.get_schema_names():
            return set()
        return set(inspector.get_table_names(schema=layout.schema))


def _ordered_revisions() -> list[str]:
    scripts = Migrator(Layout(None, "acp_")).history()
    return [script.revision for script in reversed(scripts)]


REVISIONS = _ordered_revisions()
HEAD = REVISIONS[-1]
ALL_UPGRADES = tuple(f"upgrade {revision}" for revision in REVISIONS)
