"""docs/concepts/audit.md: every Python sample runs as written, in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "audit.md"


def test_every_python_sample_in_the_audit_page_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    samples = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(samples) == 3
    namespace: dict[str, object] = {}
    for sample in samples:
        exec(compile(sample, str(DOCS), "exec"), namespace)
