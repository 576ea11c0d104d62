"""The pages on resources and the MCP proxy: their Python runs, their policies are the
example's own (which the example test runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "security" / "resources.md", ROOT / "docs" / "guides" / "mcp-proxy.md"]
EXAMPLE_POLICY = (ROOT / "examples" / "mcp_proxy" / "policy.yaml").read_text()


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_blocks_run(page: Path) -> None:
    for block in _blocks(page, "python"):
        exec(compile(block, str(page), "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_policy_excerpts_are_from_the_example_policy(page: Path) -> None:
    blocks = _blocks(page, "yaml")
    assert blocks
    for block in blocks:
        for line in block.splitlines():
            assert line.strip() in EXAMPLE_POLICY, line
