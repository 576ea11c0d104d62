"""Governing plain Python tools with ``@cp.governed``.

    python examples/decorated_tool.py [--url sqlite:///acp.db]

Each decorated call is governed first; it runs only if allowed, and its outcome (or its
exception) is recorded in the session's audit trail.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionDenied,
    ActionNotAllowed,
    ActionSteered,
    ApprovalRequired,
)

POLICY = {
    "name": "mailer",
    "tiers": {
        "auto_approve": ["email.send", "web.fetch"],
        "always_approve": ["payments.refund"],
        "steer": {"account.close": "Ask the customer to confirm in writing first."},
        "blocked": ["db.drop"],
    },
}


def synchronous(url: str) -> None:
    cp = ControlPlane.open(url)
    session = cp.open_session(agent_id="mailer-1", policy=POLICY, max_cost="0.05", max_actions=50)

    @cp.governed("email.send", cost="0.02", resource=lambda to, **_: f"mailto:{to}")
    def send_email(to: str, subject: str) -> str:
        return f"queued mail to {to}"

    @cp.governed("payments.refund", resource=lambda order, amount: f"order:{order}")
    def refund(order: str, amount: str) -> str:
        return f"refunded {amount} on {order}"

    @cp.governed("account.close")
    def close_account(account: str) -> None:
        raise AssertionError("never runs: the policy steers it")

    @cp.governed("db.drop")
    def drop_database() -> None:
        raise AssertionError("never runs: the policy blocks it")

    with cp.session_scope(session.id):
        print(send_email("bob@example.com", subject="Your ticket"))
        try:
            refund("A-17", "25.00")
        except ApprovalRequired as needed:
            ticket = needed.ticket_id
            assert ticket is not None  # None only under a dry_run policy
            print(f"approval required: ticket {ticket}")
            cp.approve(ticket, by="alice")  # or: acp approvals approve ID --by alice
            print(refund("A-17", "25.00"))  # the identical call, now approved (once)
        try:
            close_account("C-3")
        except ActionSteered as steered:
            print(f"steered: {steered.guidance}")
        try:
            drop_database()
        except ActionDenied as denied:
            print(f"denied: {denied.reason}")
        print(send_email("carol@example.com", subject="Follow-up"))
        try:
            send_email("dave@example.com", subject="One too many")
        except ActionNotAllowed as refused:
            print(f"refused: {refused}")  # the 0.05 USD budget is spent
    for event in cp.events(session.id):
        print(f"  {event.seq:>2} {event.kind:<18} {event.action or '':<16} {event.outcome or ''}")
    print("audit trail verified:", cp.verify_audit(session_id=session.id).ok)
    cp.close()


async def asynchronous(url: str) -> None:
    async with await AsyncControlPlane.open(url) as acp:
        session = await acp.open_session(
            agent_id="fetcher-1", policy=POLICY, max_cost=1, max_actions=10
        )

        @acp.governed("web.fetch", resource=lambda address: address, session=session.id)
        async def fetch(address: str) -> str:
            if "unreachable" in address:
                raise ConnectionError(f"cannot reach {address}")
            return f"<html from {address}>"

        print(await fetch("https://example.com"))
        try:
            await fetch("https://unreachable.example")
        except ConnectionError as error:
            print(f"failed and recorded: {error}")
        outcomes = [e.outcome for e in await acp.events(session.id) if e.kind == "outcome"]
        print("async outcomes:", ", ".join(str(outcome) for outcome in outcomes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="ACP database (default: a new SQLite file)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = options.url or f"sqlite:///{Path(scratch) / 'acp.db'}"
        synchronous(url)
        asyncio.run(asynchronous(url))
