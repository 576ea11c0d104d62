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


@pytest.mark.slow
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


@pytest.mark.slow
def test_mcp_proxy_example(tmp_path: Path) -> None:
    output = run_example(EXAMPLES / "mcp_proxy" / "client.py", tmp_path)
    lines = output.splitlines()
    assert lines[0] == "tools offered: list_dir, read_file, write_file"  # delete_file hidden
    for line in (
        "read_file(path='notes.txt'): ok",
        "read_file(path='secrets/key.txt'): refused (assets.out_of_scope)",
        "read_file(path='./notes/../secrets/key.txt'): refused (assets.out_of_scope)",
        "list_dir(path='secrets'): refused (assets.out_of_scope)",
        "read_file(path='../../etc/passwd'): refused (assets.invalid_resource)",
        "delete_file(path='notes.txt'): refused (tier.blocked:fs.delete)",
        "write_file(path='todo.txt', text='call mum\\n'): refused (tier.always_approve:fs.write)",
        "write_file(path='todo.txt', text='call mum\\n'): ok",
        "session completed: spent 0.0031 USD",
        "audit trail verified: True",
        "todo.txt: call mum",
    ):
        assert line in lines, output
    # The absolute path to the secret, under the server's root, is the same resource.
    (absolute,) = [line for line in lines if line.startswith("read_file(path='/")]
    assert absolute.endswith("/secrets/key.txt'): refused (assets.out_of_scope)")
    # Approved once: the identical write after the approved one needs a new approval.
    writes = [line for line in lines if line.startswith("write_file(")]
    assert [w.rsplit(": ", 1)[1] for w in writes] == [
        "refused (tier.always_approve:fs.write)",
        "ok",
        "refused (tier.always_approve:fs.write)",
    ]


@pytest.mark.slow
def test_litellm_example(tmp_path: Path) -> None:
    out = _run("litellm_budget.py", tmp_path)
    assert "sync call answered: Done." in out
    assert "sync call refused before the provider: TokenBudgetExhausted" in out
    assert "async call answered" in out
    assert "async call refused before the provider: TokenBudgetExhausted" in out
    # litellm's mock reports 10 prompt + 20 completion tokens; gpt-4o-mini's cost-map price.
    assert "alice used 60 tokens in 2 calls" in out
    assert "held now: 0 tokens" in out
    assert "ledger: 2 calls, 60 tokens, $0.000027000" in out


@pytest.mark.slow
def test_langchain_example(tmp_path: Path) -> None:
    out = _run("langchain_agent.py", tmp_path)
    assert "the model read (look_up_order): order 981: 25.00 USD, shipped" in out
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in out
    assert "paused: issue_refund needs approval, ticket " in out
    assert "resumed before anyone decided: paused again: True" in out
    assert "refunds paid so far: []" in out
    assert "agent: Order 981 is refunded. I may not delete accounts." in out
    assert "refunds paid: ['981']" in out
    assert "delete_customer ran 0 times" in out
    assert "ticket is consumed" in out
    assert "audit chain verified: True" in out


@pytest.mark.slow
def test_pydantic_ai_example(tmp_path: Path) -> None:
    out = _run("pydantic_ai_agent.py", tmp_path)
    assert "the model read (look_up_order, success): order 981: 25.00 USD, shipped" in out
    assert (
        "the model read (delete_customer, failed): The control plane refused delete_customer "
        "(denied: tier.blocked:delete_customer)" in out
    )
    assert "deferred: issue_refund needs approval, ticket " in out
    assert "resumed before anyone decided: deferred again: True" in out
    assert "refunds paid so far: []" in out
    assert "agent: Order 981 is refunded. I may not delete accounts." in out
    assert "refunds paid: ['981']" in out
    assert "delete_customer ran 0 times" in out
    assert "ticket is consumed" in out
    counted = out.split("Pydantic AI counted ")[1].split()[0]
    assert f"ACP charged {counted} tokens in 3 model requests" in out
    assert "audit chain verified: True" in out


@pytest.mark.slow
def test_claude_agent_sdk_example(tmp_path: Path) -> None:
    from tests.claude_helpers import fake_cli

    # What the model asks for, played by the stand-in CLI (the real one needs the network).
    cli = fake_cli(
        tmp_path,
        [
            ("mcp__shop__look_up_order", "toolu_1", {"order": "981"}),
            ("mcp__shop__issue_refund", "toolu_2", {"order": "981"}),
            ("mcp__shop__delete_customer", "toolu_3", {"customer": "c-42"}),
        ],
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACP_")}
    completed = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "claude_agent.py"),
            f"sqlite:///{tmp_path / 'example.db'}",
            "--cli",
            cli["cli_path"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **cli["env"]},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "the model read: order 981: 25.00 USD, shipped" in out
    assert "a person approves ticket " in out
    assert "the model read: refunded 25.00 USD on order 981" in out
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in out
    assert "refunds paid: ['981']" in out
    assert "delete_customer ran 0 times" in out
    assert "audit chain verified: True" in out
