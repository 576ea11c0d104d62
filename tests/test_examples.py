"""The examples run as a user would run them, so none of them can rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(path: Path, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    done = subprocess.run(
        [sys.executable, str(path), "--url", url],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_decorated_tool_example(tmp_path: Path) -> None:
    output = run_example(EXAMPLES / "decorated_tool.py", tmp_path)
    for line in (
        "queued mail to bob@example.com",
        "refunded 25.00 on A-17",
        "steered: Ask the customer to confirm in writing first.",
        "denied: tier.blocked:db.drop",
        "refused: email.send was denied (budget.max_cost)",
        "audit trail verified: True",
        "failed and recorded: cannot reach https://unreachable.example",
        "async outcomes: succeeded, failed",
    ):
        assert line in output, output
    assert "approval required: ticket " in output


def test_mcp_proxy_example(tmp_path: Path) -> None:
    output = run_example(EXAMPLES / "mcp_proxy" / "client.py", tmp_path)
    lines = output.splitlines()
    assert lines[0] == "tools offered: list_dir, read_file, write_file"  # delete_file hidden
    for line in (
        "read_file(path='notes.txt'): ok",
        "read_file(path='secrets/key.txt'): refused (assets.out_of_scope)",
        "delete_file(path='notes.txt'): refused (tier.blocked:fs.delete)",
        "write_file(path='todo.txt', text='call mum\\n'): refused (tier.always_approve:fs.write)",
        "write_file(path='todo.txt', text='call mum\\n'): ok",
        "session completed: spent 0.0031 USD",
        "audit trail verified: True",
        "todo.txt: call mum",
    ):
        assert line in lines, output
    # Approved once: the identical write after the approved one needs a new approval.
    writes = [line for line in lines if line.startswith("write_file(")]
    assert [w.rsplit(": ", 1)[1] for w in writes] == [
        "refused (tier.always_approve:fs.write)",
        "ok",
        "refused (tier.always_approve:fs.write)",
    ]
