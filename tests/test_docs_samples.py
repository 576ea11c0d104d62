"""Every sample in the README and the docs runs, and every policy shown validates
(the conventions are in tests/docs_samples.py and docs/development/testing.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent_control_plane.evaluators import EvaluatorRegistry
from agent_control_plane.rules.policy import parse_policy
from tests.docs_samples import ROOT, Block, blocks, pages, runnable

RUNNABLE = [page for page in pages() if any(runnable(block) for block in blocks(page))]
YAML = [block for page in pages() for block in blocks(page) if block.language == "yaml"]

# Pages whose samples earlier tests counted: a page that suddenly shows fewer was cut.
AT_LEAST = {
    "README.md": 2,
    "docs/quickstart.md": 5,
    "docs/concepts/audit.md": 3,
    "docs/concepts/errors.md": 2,
    "docs/concepts/resources.md": 2,
    "docs/guides/agent-keys.md": 4,
    "docs/guides/governed.md": 3,
    "docs/integrations/openai-agents.md": 3,
    "docs/integrations/langgraph.md": 2,
    "docs/integrations/litellm.md": 2,
    "docs/integrations/pydantic-ai.md": 3,
}


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_the_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ACP_", "OPENAI_", "ANTHROPIC_"))
    }
    # Offline: litellm would fetch its cost map, and nothing may reach the network.
    environment["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), environment.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.docs_samples", str(page)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, f"{_name(page)}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", YAML, ids=lambda block: block.where)
def test_each_policy_shown_validates(block: Block) -> None:
    if block.excerpt_of is not None:
        source = (ROOT / block.excerpt_of).read_text()
        for line in block.text().splitlines():
            assert line.strip() in source, f"{block.where}: not in {block.excerpt_of}: {line}"
        return
    document = parse_policy(yaml.safe_load(block.text()), source=block.where)
    # Only plugins installed as entry points: a policy shown may not name an evaluator
    # that exists only in some sample's Python.
    EvaluatorRegistry().require(document.evaluators())


def test_no_run_markers_give_a_reason() -> None:
    for page in pages():
        for block in blocks(page):
            assert block.no_run != "", f"{block.where}: say why it cannot run"


@pytest.mark.parametrize(("page", "count"), AT_LEAST.items())
def test_the_pages_keep_their_samples(page: str, count: int) -> None:
    found = [block for block in blocks(ROOT / page) if runnable(block)]
    assert len(found) >= count, page


def test_the_collector_sees_every_page() -> None:
    names = {_name(page) for page in pages()}
    assert "README.md" in names
    assert "docs/quickstart.md" in names
    assert len(RUNNABLE) >= 10
