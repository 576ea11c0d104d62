"""``make demo`` runs ``acp demo``: it must keep working and keep telling the truth."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from agent_control_plane.demo.run import run_demo
from agent_control_plane.schema.tables import LOGICAL_TABLES
from tests.acp_helpers import HEAD


def test_demo_shows_the_host_autogenerate_leaving_acp_alone(tmp_path: Path) -> None:
    output = io.StringIO()
    run_demo(Console(file=output, width=200), workdir=tmp_path)
    text = output.getvalue()
    assert "acp_events" in text
    assert f"acp_version (ACP's own version table) │ {HEAD}" in text
    assert "CreateTable customers" in text
    assert f"guard kept {len(LOGICAL_TABLES) + 1} ACP objects" in text  # tables + version
    assert re.search(r"ACP operations in the host's autogenerate\s+│ 0 ", text)
    assert "The host's autogenerate touched none of ACP's tables." in text
    assert (tmp_path / "app.db").exists()


def test_demo_runs_the_governed_agent_through_every_outcome(tmp_path: Path) -> None:
    output = io.StringIO()
    run_demo(Console(file=output, width=200), workdir=tmp_path)
    text = output.getvalue()
    for fragment in (
        "tier.auto_approve:read_ticket",
        "tier.steer:close_account",
        "Ask the customer to confirm in writing first.",
        "tier.always_approve:issue_refund",
        "tier.blocked:drop_database",
        "risk.max_weight",
        "rule:no-bulk-export",
        "policy.default_deny",
        "budget.max_actions",
        "session.killed",
        "status=aborted killed=True",
        "approval.once:",
        "alice approved ticket",
        "intact: 22 events, 0 problems",
        "sequence.after:read_inbox",
        "Audit trail verified.",
    ):
        assert fragment in text, fragment


def test_the_demo_reads_at_80_columns_and_explains_its_figures(tmp_path: Path) -> None:
    output = io.StringIO()
    run_demo(Console(file=output, width=80), workdir=tmp_path)
    lines = output.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(" ".join(line.split()) for line in lines)
    # A settlement below the estimate gives money back; the row says so and shows it.
    assert "outcome: cost $0.016, not $0.284/5 $0.02: $0.004 given back" in text
    # The retry under step 1's key replays that decision, with step 1's figures.
    assert "a retry of step 1 (same idempotency key)" in text
    assert "nothing charged again" in text
