"""The installed alembic plugin, proved against the installed alembic."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from alembic.runtime import plugins

from agent_control_plane import ControlPlane
from agent_control_plane.alembic import guard
from agent_control_plane.demo.host_project import HostProject
from agent_control_plane.schema.tables import LOGICAL_TABLES
from agent_control_plane.testing import assert_no_acp_autogenerate_ops
from tests.databases import TestDatabase

PLUGIN = "alembic.autogenerate.agent_control_plane"


def test_the_entry_point_is_installed_and_loaded_by_alembic() -> None:
    entry_points = {ep.name: ep.value for ep in metadata.entry_points(group="alembic.plugins")}
    assert entry_points[PLUGIN] == "agent_control_plane.alembic.guard"
    assert PLUGIN in plugins._all_plugins
    # The default autogenerate_plugins wildcard takes it in.
    assert plugins._make_re("alembic.autogenerate.*").match(PLUGIN)


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False), ("off", False)])
def test_the_switch(monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool) -> None:
    if value is None:
        monkeypatch.delenv("ACP_ALEMBIC_GUARD", raising=False)
    else:
        monkeypatch.setenv("ACP_ALEMBIC_GUARD", value)
    assert guard.enabled() is on


def _alembic(project: HostProject, *args: str, guard_on: bool) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ACP_ALEMBIC_GUARD": "1" if guard_on else "0"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "-c", str(project.ini_path), *args],
        cwd=project.root,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )


def test_the_real_alembic_command_with_an_unmodified_env(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    ControlPlane.open(url).close()
    project = HostProject.create(tmp_path / "host", url, dialect="sqlite")

    result = _alembic(project, "revision", "--autogenerate", "-m", "first", guard_on=True)
    kept = [line for line in result.stderr.splitlines() if "agent-control-plane guard" in line]
    assert len(kept) == 1, result.stderr
    assert f"kept {len(LOGICAL_TABLES) + 1} ACP objects" in kept[0]  # tables + version
    assert "acp_events" in kept[0]
    (script,) = (project.migrations_dir / "versions").glob("*_first.py")
    text = script.read_text()
    assert "create_table('customers'" in text
    # The host's own foreign key to acp_sessions stays; no operation targets an ACP table.
    assert "['acp_sessions.id']" in text
    assert not re.search(r"op\.\w+\(\s*'acp_", text), text

    _alembic(project, "upgrade", "head", guard_on=True)
    unguarded = _alembic(project, "revision", "--autogenerate", "-m", "second", guard_on=False)
    assert "agent-control-plane guard" not in unguarded.stderr
    (second,) = (project.migrations_dir / "versions").glob("*_second.py")
    assert "op.drop_table('acp_events')" in second.read_text()


def test_assert_no_acp_autogenerate_ops(
    database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ControlPlane.open(database.url_string).close()
    project = HostProject.create(
        tmp_path / "host",
        database.url_string,
        dialect=database.dialect,
        include_schemas=database.dialect == "postgresql",
    )
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "1")
    assert_no_acp_autogenerate_ops(project.config())
    assert not list((project.migrations_dir / "versions").glob("*.py"))  # wrote no file
    monkeypatch.setenv("ACP_ALEMBIC_GUARD", "0")
    with pytest.raises(AssertionError, match=r"proposes .* operation"):
        assert_no_acp_autogenerate_ops(project.config())
