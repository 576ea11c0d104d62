"""Host-managed mode: ACP's revisions run from inside the host's own revision."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from agent_control_plane import ControlPlane, SchemaNotCurrentError
from agent_control_plane.demo.host_project import HostProject
from agent_control_plane.schema.layout import resolve_layout
from tests.databases import TestDatabase


def test_a_host_revision_creates_acp_tables_and_verify_passes(
    database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "1")
    project = HostProject.create(tmp_path / "host", database.url_string, dialect=database.dialect)
    project.write_revision(
        "h001_acp",
        "from agent_control_plane.alembic import host\nhost.upgrade(op, to='acp_0001')",
        "from agent_control_plane.alembic import host\nhost.downgrade(op, to='base')",
    )
    with pytest.raises(SchemaNotCurrentError):
        ControlPlane.open(database.url_string, migrate="verify")
    project.upgrade()
    with pytest.raises(SchemaNotCurrentError, match="database has acp_0001"):
        ControlPlane.open(database.url_string, migrate="verify")
    # A newer package ships a new ACP revision: the host adds a revision pinning it.
    project.write_revision(
        "h002_acp",
        "from agent_control_plane.alembic import host\nhost.upgrade(op, to='acp_0008')",
        "from agent_control_plane.alembic import host\nhost.downgrade(op, to='acp_0001')",
    )
    project.upgrade()
    with ControlPlane.open(database.url_string, migrate="verify") as control_plane:
        assert control_plane.schema_revision() == ("acp_0008",)
        with control_plane.engine.connect() as connection:
            assert control_plane.migrator.drift(connection) == []
    # The host's next autogenerate neither drops ACP's tables nor re-creates the stub.
    project.revision("host tables")
    project.upgrade()
    layout = resolve_layout(database.dialect)
    engine = create_engine(database.url)
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names(schema=layout.schema))
    assert layout.table_name("sessions") in names
    project.downgrade("h002_acp")
    project.downgrade("h001_acp")
    project.downgrade("base")
    with engine.connect() as connection:
        remaining = set(inspect(connection).get_table_names(schema=layout.schema))
    assert layout.table_name("sessions") not in remaining
    with pytest.raises(SchemaNotCurrentError, match="no ACP tables"):
        ControlPlane.open(database.url_string, migrate="verify")
    engine.dispose()


def test_offline_sql_of_a_host_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'offline.db'}"
    project = HostProject.create(tmp_path / "host", url, dialect="sqlite")
    project.write_revision(
        "h001_acp",
        "from agent_control_plane.alembic import host\nhost.upgrade(op, to='acp_0001')",
        "from agent_control_plane.alembic import host\n"
        "host.downgrade(op, to='base', from_revision='acp_0001')",
    )
    from alembic import command

    buffer = io.StringIO()
    config = project.config()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    output = buffer.getvalue()
    assert "CREATE TABLE acp_sessions" in output
    assert "CREATE TABLE acp_version" in output
    assert "INSERT INTO acp_version (version_num) VALUES ('acp_0001')" in output
    assert not (tmp_path / "offline.db").exists()  # offline: nothing connected
