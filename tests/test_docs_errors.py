"""The errors page's samples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "errors.md"
SAMPLES = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_the_page_has_samples() -> None:
    assert len(SAMPLES) == 2


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_sample_runs(sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(sample, str(PAGE), "exec"), {"__name__": "__docs__"})
