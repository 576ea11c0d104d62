"""What a user installs: the distribution's name and version, its license, and a wheel that
installs into a clean virtualenv and runs the quickstart there."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agent_control_plane
from agent_control_plane.cli import app
from agent_control_plane.version import DISTRIBUTION, installed_version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

QUICKSTART = """
from agent_control_plane import ControlPlane, __version__

policy = {"name": "p", "tiers": {"auto_approve": ["read"], "blocked": ["drop"]}}
with ControlPlane.open("sqlite:///app.db") as cp:
    session = cp.open_session(agent_id="bot", policy=policy, max_cost="1", max_actions=5)
    print(cp.govern(session.id, "read", cost="0.1").outcome.value)
    print(cp.govern(session.id, "drop").reason)
    print(cp.verify_audit().ok, __version__)
"""


def test_the_distribution_name_and_the_version_are_one_source() -> None:
    assert PROJECT["name"] == DISTRIBUTION
    assert agent_control_plane.__version__ == installed_version()
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"acp ({DISTRIBUTION}) {installed_version()}\n"


def test_the_license_file_is_the_license_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


@pytest.mark.slow  # builds a wheel, makes a venv and installs into it
@pytest.mark.timeout(600)
def test_a_wheel_installs_into_a_clean_venv_and_runs_the_quickstart(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)
    ran = subprocess.run(
        [str(python), "-c", QUICKSTART],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    outcome, reason, verified = ran.stdout.splitlines()
    assert (outcome, reason) == ("allowed", "tier.blocked:drop")
    ok, version = verified.split()
    assert ok == "True"
    assert version == PROJECT["version"]
    shown = subprocess.run(
        [str(environment / "bin" / "acp"), "--version"], capture_output=True, text=True, check=True
    )
    assert shown.stdout == f"acp ({DISTRIBUTION}) {PROJECT['version']}\n"
