"""Take the dashboard screenshots in docs/images/ (``make screenshots``).

Builds a small governed history in a throwaway SQLite database, serves the gateway with its
dashboard on a free local port and photographs each page with Debian's chromium.
"""

from __future__ import annotations

import functools
import random
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.dashboard_helpers import CHROMIUM, PRICES, served  # noqa: E402

from agent_control_plane import ControlPlane  # noqa: E402
from agent_control_plane.rules.tokens import Identity, TokenUsage  # noqa: E402

POLICY = {
    "name": "support-bot",
    "tiers": {
        "auto_approve": ["read_ticket", "search_kb", "draft_reply"],
        "always_approve": ["issue_refund", "send_email"],
        "blocked": ["drop_database"],
    },
    "approval_timeout": "4h",
}


def _days_before(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days, hours=1)


def build_history(plane: ControlPlane) -> str:
    """Sessions, tickets, a kill and a month of token usage; returns the session to show."""
    plane.set_prices(PRICES)

    def session(name: str, agent: str, tenant: str, max_cost: str, max_actions: int) -> str:
        opened = plane.open_session(
            name,
            agent_id=agent,
            tenant=tenant,
            policy=POLICY,
            max_cost=Decimal(max_cost),
            max_actions=max_actions,
        )
        return str(opened.id)

    refund = session("refund-4711", "support-bot", "acme", "5.00", 40)
    for action, cost in (("read_ticket", "0.40"), ("search_kb", "0.90"), ("draft_reply", "1.10")):
        plane.govern(refund, action, resource="ticket/4711", cost=cost)
    plane.govern(
        refund, "issue_refund", resource="order/4711", args={"amount": "129.00"}, cost="0.30"
    )
    plane.govern(refund, "drop_database", resource="prod", cost="0")

    outreach = session("spring-outreach", "mailer", "globex", "20.00", 200)
    for index in range(37):
        plane.govern(outreach, "draft_reply", resource=f"lead/{index}", cost="0.42")
    plane.govern(outreach, "send_email", resource="list/spring", args={"count": 1800}, cost="2")

    busy = session("invoice-triage", "billing-bot", "acme", "10.00", 50)
    for index in range(44):
        plane.govern(busy, "read_ticket", resource=f"invoice/{index}", cost="0.19")

    runaway = session("crawler-7", "research-bot", "globex", "3.00", 500)
    for index in range(12):
        plane.govern(runaway, "search_kb", resource=f"page/{index}", cost="0.05")
    plane.kill_session(runaway, reason="looping on the same pages")

    done = session("weekly-digest", "digest-bot", "acme", "2.00", 30)
    plane.govern(done, "read_ticket", resource="digest", cost="0.20")
    plane.complete_session(done, "digest sent")

    plane.set_token_budget(Identity(org="acme"), "month", max_tokens=60_000_000, max_cost_usd="90")
    plane.set_token_budget(Identity(org="globex"), "day", max_tokens=2_000_000, max_requests=500)
    # Backdate the ledger so the chart has a month of days to show.
    runtime = plane._runtime
    # Each record_usage below runs at a day of the month, through a Runtime with that clock.
    now = datetime.now(UTC)
    chooser = random.Random(7)
    for days_ago in range(29, -1, -1):
        for model, scale in (("gpt-4o-mini", 9), ("gpt-4o", 2)):
            for org in ("acme", "globex"):
                plane._runtime = replace(
                    runtime, clock=functools.partial(_days_before, now, days_ago)
                )
                plane.record_usage(
                    Identity(org=org, agent="support-bot"),
                    model,
                    TokenUsage(
                        input_tokens=chooser.randint(20_000, 60_000) * scale,
                        output_tokens=chooser.randint(4_000, 12_000) * scale,
                    ),
                )
    plane._runtime = runtime
    return refund


def shoot(page: Page, name: str) -> None:
    path = ROOT / "docs" / "images" / f"dashboard-{name}.png"
    # The live feed is long: its first screenful says it all.
    page.screenshot(path=str(path), full_page=name != "events")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        ControlPlane.open(f"sqlite:///{folder}/screenshots.db") as plane,
    ):
        shown = build_history(plane)
        key = plane.create_api_key("admin", name="ops-admin").key
        with served(plane) as base_url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base_url}/ui/login")
            shoot(page, "login")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/ui/approvals")
            shoot(page, "approvals")
            for name, path in (
                ("sessions", "/ui/sessions"),
                ("session", f"/ui/sessions/{shown}"),
                ("events", "/ui/events"),
                ("tokens", "/ui/tokens"),
                ("audit", "/ui/audit"),
            ):
                page.goto(base_url + path)
                shoot(page, name)
            browser.close()


if __name__ == "__main__":
    main()
