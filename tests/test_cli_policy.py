"""``acp policy validate|apply``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agent_control_plane import ControlPlane
from agent_control_plane.cli import app
from tests.databases import TestDatabase

runner = CliRunner()


def test_validate_points_at_the_line_and_field(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("name: support-bot\ntiers:\n  auto_approve: [read_ticket]\n")
    bad.write_text("name: support-bot\ntiers:\n  auto_approve: [read_ticket]\n  blokked: [x]\n")
    result = runner.invoke(app, ["policy", "validate", str(good)])
    assert (result.exit_code, "valid policy 'support-bot'" in result.output) == (0, True)
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:4: tiers.blokked" in result.output
    assert "Extra inputs are not permitted" in result.output


def test_apply_stores_a_versioned_snapshot(database: TestDatabase, tmp_path: Path) -> None:
    ControlPlane.open(database.url_string).close()
    path = tmp_path / "p.json"
    path.write_text('{"name": "ops", "default": "allow"}')
    url = ["--url", database.url_string]
    first = runner.invoke(app, ["policy", "apply", str(path), *url])
    assert (first.exit_code, "version 1" in first.output) == (0, True)
    assert "version 1" in runner.invoke(app, ["policy", "apply", str(path), *url]).output
    path.write_text('{"name": "ops", "default": "deny"}')
    assert "version 2" in runner.invoke(app, ["policy", "apply", str(path), *url]).output
    with ControlPlane.open(database.url_string) as cp:
        assert [p.version for p in cp.list_policies("ops")] == [1, 2]
