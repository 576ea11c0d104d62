"""The governance demo: a scripted agent (no LLM, no network) under a policy."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.models import Decision

POLICY: dict[str, Any] = {
    "name": "support-bot",
    "mode": "live",
    "default": "deny",
    "tiers": {
        "auto_approve": ["read_ticket", "search_kb", "draft_reply", "read_inbox", "send_email"],
        "always_approve": ["issue_refund"],
        "steer": {"close_account": "Ask the customer to confirm in writing first."},
        "blocked": ["drop_database"],
    },
    "risk": {"max_weight": 0.5, "min_score": 0.7},
    # Once the agent has read the inbox it may not send mail on its own.
    "sequences": [{"deny": "send_email", "after": "read_inbox"}],
    "rules": [
        {
            "name": "no-bulk-export",
            "when": {"field": "args.rows", "op": "gt", "value": 1000},
            "outcome": "deny",
        }
    ],
}

# (action, cost, weight, score, args): what the scripted agent tries, in order.
SCRIPT: list[tuple[str, str, float, float, dict[str, Any]]] = [
    ("read_ticket", "0.02", 0.1, 0.95, {"ticket": 4711}),
    ("search_kb", "0.05", 0.1, 0.90, {"query": "refund policy"}),
    ("close_account", "0.01", 0.4, 0.90, {"customer": "c-42"}),
    ("issue_refund", "0.00", 0.6, 0.90, {"amount": "25.00"}),
    ("drop_database", "0.00", 1.0, 0.99, {}),
    ("draft_reply", "0.08", 0.9, 0.95, {"ticket": 4711}),
    ("search_kb", "0.05", 0.1, 0.80, {"query": "export", "rows": 50_000}),
    ("send_fax", "0.01", 0.1, 0.99, {}),
    ("read_inbox", "0.01", 0.1, 0.95, {}),
    ("send_email", "0.01", 0.1, 0.95, {"to": "customer@example.com"}),
]


def _row(table: Table, step: str, decision: Decision) -> None:
    colour = {
        "allowed": "green",
        "steer": "yellow",
        "needs_approval": "cyan",
        "denied": "red",
    }[decision.outcome.value]
    reason = decision.reason + (f"\n[dim]{decision.guidance}[/]" if decision.guidance else "")
    table.add_row(
        step,
        decision.action,
        f"[{colour}]{decision.outcome.value}[/]",
        reason,
        f"${decision.remaining_cost:.3f}/{decision.remaining_actions}",
    )


def _note(table: Table, text: str, left: str = "") -> None:
    """A line under the row above, saying why its figures are what they are."""
    table.add_row("", "", "", f"[dim italic]{text}[/]", f"[dim]{left}[/]")


def _table() -> Table:
    """The decisions, one row each; long reasons fold, so that it fits 80 columns."""
    table = Table(title="Each govern() call: outcome, reason, and what is left", box=SIMPLE_HEAD)
    table.add_column("#", overflow="fold", max_width=8)
    table.add_column("action", overflow="fold")
    table.add_column("outcome", overflow="fold")
    table.add_column("reason (and guidance)", overflow="fold", ratio=1)
    table.add_column("left $/n", no_wrap=True)
    return table


def run_agent_demo(console: Console, workdir: Path) -> bool:
    """Run the scripted agent; return True when the audit trail verifies."""
    url = f"sqlite:///{workdir / 'agents.db'}"
    console.rule("[bold]A scripted agent under a policy (embedded SQLite)")
    with ControlPlane.open(url) as cp:
        session = cp.open_session(
            "ticket-4711",
            agent_id="support-bot-1",
            tenant="acme",
            policy=POLICY,
            max_cost=Decimal("0.30"),
            max_actions=6,
        )
        console.print(
            f"Session [cyan]{session.id}[/] for agent support-bot-1: budget $0.30 and 6 actions"
        )
        table = _table()
        step = 0
        tickets: list[uuid.UUID] = []
        for action, cost, weight, score, args in SCRIPT:
            step += 1
            decision = cp.govern(
                session.id,
                action,
                cost=cost,
                weight=weight,
                score=score,
                args=args,
                idempotency_key=f"step-{step}",
            )
            _row(table, str(step), decision)
            if decision.ticket_id is not None and action == "issue_refund":
                tickets.append(decision.ticket_id)
            if decision.allowed:
                actual = (Decimal(cost) * Decimal("0.8")).quantize(Decimal("0.000000001"))
                cp.record_outcome(decision, "succeeded", actual_cost=actual, result={"ok": True})
                after = cp.get_session(session.id)
                _note(
                    table,
                    f"outcome: cost ${actual.normalize()}, not ${cost}: "
                    f"${(Decimal(cost) - actual).normalize()} given back",
                    f"${after.max_cost - after.cost_used:.3f}/"
                    f"{after.max_actions - after.actions_used}",
                )
        # The human step: a (scripted) approver approves the refund, which is honoured once.
        (refund_ticket,) = tickets
        approved = cp.approve(refund_ticket, "alice@support", reason="customer verified by phone")
        approvals_note = f"alice approved ticket {str(refund_ticket)[:8]} ({approved.scope})"
        for attempt in ("approved", "again"):
            step += 1
            refund = cp.govern(
                session.id,
                "issue_refund",
                cost="0.00",
                weight=0.6,
                score=0.9,
                args={"amount": "25.00"},
            )
            _row(table, str(step), refund)
            _note(
                table,
                "the approved call, honoured once"
                if attempt == "approved"
                else "the same call again: the approval was used, so it asks anew",
            )
        retry = cp.govern(
            session.id,
            "read_ticket",
            cost="0.02",
            weight=0.1,
            score=0.95,
            args={"ticket": 4711},
            idempotency_key="step-1",
        )
        _row(table, "1", retry)
        _note(
            table,
            "a retry of step 1 (same idempotency key): its decision replayed as it was "
            "then, nothing charged again",
        )
        while True:  # the agent loops on cheap searches until its budget stops it
            step += 1
            decision = cp.govern(session.id, "search_kb", cost="0.04", weight=0.1, score=0.9)
            _row(table, str(step), decision)
            if not decision.allowed:
                break
        stopped = cp.kill_agent("support-bot-1", reason="operator pressed the kill switch")
        alive = cp.heartbeat(session.id)
        step += 1
        _row(table, str(step), cp.govern(session.id, "read_ticket", weight=0.1, score=0.95))
        console.print(table)
        final = cp.get_session(session.id)
        report = cp.verify_audit()
        events = cp.events(session.id)
        summary = Table(show_header=False, title="Summary")
        summary.add_row("human approval", approvals_note)
        summary.add_row("kill_agent stopped", f"{stopped} session(s)")
        summary.add_row("heartbeat after the kill", f"status={alive.status} killed={alive.killed}")
        summary.add_row("session status", f"{final.status} ({final.end_reason})")
        summary.add_row("actions used", f"{final.actions_used} of {final.max_actions}")
        summary.add_row(
            "cost used (settled to actual)", f"${final.cost_used:.4f} of ${final.max_cost:.2f}"
        )
        summary.add_row("events in the audit trail", str(len(events)))
        summary.add_row(
            "audit verification",
            f"{'intact' if report.ok else 'BROKEN'}: {report.events_checked} events, "
            f"{len(report.problems)} problems",
        )
        console.print(summary)
        console.print(
            Panel(
                "[bold green]Audit trail verified.[/]"
                if report.ok
                else "[bold red]Audit verification failed![/]"
            )
        )
        return report.ok
