"""The docs site builds with --strict, and its generated references cover the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs.generators import settings

ROOT = Path(__file__).resolve().parents[1]
# Names that look like settings but are Python constants.
NOT_VARIABLES = {"ACP_KINDS", "ACP_REVISION_RE"}


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("ACP_")},
            "NO_MKDOCS_2_WARNING": "1",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for page in ("reference/cli", "reference/rest", "reference/policy", "reference/database"):
        assert (tmp_path / page / "index.html").is_file(), page
    assert (tmp_path / "reference" / "openapi.json").is_file()


def test_every_acp_variable_in_the_code_is_in_the_settings_reference() -> None:
    named = set()
    for source in (ROOT / "src").rglob("*.py"):
        named |= set(re.findall(r"\bACP_[A-Z][A-Z_]*[A-Z]\b", source.read_text()))
    documented = set(settings.variables())
    assert named - NOT_VARIABLES - documented == set()


def test_tests_the_docs_cite_exist() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for path, name in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", page.read_text()):
            assert (ROOT / path).is_file(), (page.name, path)
            if name:
                assert f"def {name}(" in (ROOT / path).read_text(), (page.name, path, name)
