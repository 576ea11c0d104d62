"""The Python samples of the agent framework and ``@governed`` pages run as written (a
block right after ``<!-- no-run: reason -->`` is skipped)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = [
    "integrations/openai-agents.md",
    "guides/governed.md",
    "integrations/langchain.md",
    "integrations/claude-agent-sdk.md",
]
_BLOCK = re.compile(r"^(<!-- no-run: .+ -->\n)?```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _samples() -> list[tuple[str, str]]:
    return [
        (f"{page}#{number}", code)
        for page in PAGES
        for number, (skipped, code) in enumerate(_BLOCK.findall((DOCS / page).read_text()), start=1)
        if not skipped
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), _samples(), ids=[w for w, _ in _samples()])
def test_the_sample_runs(where: str, code: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ACP_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr}"
