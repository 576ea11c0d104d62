"""The examples run offline and say what they promise (so none of them can rot)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name: str, tmp_path: Path) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ACP_", "OPENAI_"))}
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), f"sqlite:///{tmp_path / 'example.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.slow
def test_openai_agents_example(tmp_path: Path) -> None:
    out = _run("openai_agents_guardrail.py", tmp_path)
    assert "tool output shown to the model: order 981: 25.00 USD, shipped" in out
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in out
    assert "delete_customer ran 0 times" in out
    assert "tokens used: 360 in 2 model calls" in out
    assert "second run stopped: token budget exhausted" in out
    assert "third run refused before calling the model" in out
    assert "outcome    look_up_order    succeeded" in out
    assert "audit chain verified: True" in out


@pytest.mark.slow
def test_langgraph_example(tmp_path: Path) -> None:
    out = _run("langgraph_approval.py", tmp_path)
    assert out.count("paused for approval, ticket ") == 2
    assert "order 981: order 981: 25.00 USD; refunded 25.00 USD on order 981" in out
    assert "order 981: ticket is consumed" in out
    assert "issue_refund was refused by the control plane (approval.denied:" in out
    assert "order 982: ticket is denied" in out
    assert "refunds paid: ['981']" in out
