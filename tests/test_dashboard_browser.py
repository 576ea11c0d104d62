"""The dashboard driven by a real browser (Debian's chromium through Playwright) against a
real server and database: what an operator clicks is what the database records."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from agent_control_plane import ControlPlane
from tests.dashboard_helpers import CHROMIUM, pending_refund, refund, served
from tests.databases import fresh_database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module (browser downloads are impossible here: the
    Makefile installs Debian's chromium)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlPlane]:
    for database in fresh_database(request.param, tmp_path):
        with ControlPlane.open(database.url_string) as opened:
            yield opened


@pytest.fixture
def sqlite_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'browser.db'}") as opened:
        yield opened


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def _sign_in(page: Page, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_approve_a_pending_ticket_in_the_browser(plane: ControlPlane, page: Page) -> None:
    pending = pending_refund(plane)
    issued = plane.create_api_key("approver", name="alice")
    with served(plane) as base_url:
        _sign_in(page, base_url, issued.key)
        expect(page).to_have_url(re.compile(r"/ui/approvals$"))
        row = page.locator(f'tr[data-ticket="{pending.ticket_id}"]')
        expect(row).to_contain_text("issue_refund")
        row.get_by_label("approval reason").fill("customer verified")
        row.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_have_text("Approved issue_refund (once).")
        expect(page.get_by_text("Nothing is waiting for a decision.")).to_be_visible()
    ticket = plane.get_ticket(pending.ticket_id)
    assert ticket.status == "approved"
    assert ticket.decided_by == f"alice (key:{issued.api_key.key_id})"
    assert ticket.decision_reason == "customer verified"
    retry = refund(plane, pending.session_id)
    assert (retry.outcome, retry.ticket_id) == ("allowed", pending.ticket_id)


def test_kill_a_session_from_the_browser(sqlite_plane: ControlPlane, page: Page) -> None:
    plane = sqlite_plane
    pending = pending_refund(plane, "runaway")
    spared = pending_refund(plane, "spared")
    with served(plane) as base_url:
        _sign_in(page, base_url, plane.create_api_key("admin").key)
        page.get_by_role("link", name="Sessions").click()
        row = page.locator(f'tr[data-session="{pending.session_id}"]')
        expect(row).to_contain_text("active")
        row.get_by_role("link", name="Kill…").click()
        expect(page.get_by_role("heading")).to_have_text("Stop session runaway?")
        assert plane.get_session(pending.session_id).status == "active"  # only asked so far
        page.get_by_label("Reason").fill("looping on refunds")
        page.get_by_role("button", name="Yes, kill").click()
        expect(page.get_by_role("status")).to_contain_text("stopped 1 session(s)")
        expect(page.locator("h1 .badge")).to_have_text("aborted")
    session = plane.get_session(pending.session_id)
    assert (session.status, session.end_reason) == ("aborted", "looping on refunds")
    assert plane.get_session(spared.session_id).status == "active"
    assert refund(plane, pending.session_id).outcome == "denied"


def test_a_viewer_cannot_approve(sqlite_plane: ControlPlane, page: Page) -> None:
    plane = sqlite_plane
    pending = pending_refund(plane)
    with served(plane) as base_url:
        _sign_in(page, base_url, plane.create_api_key("viewer").key)
        row = page.locator(f'tr[data-ticket="{pending.ticket_id}"]')
        expect(row).to_contain_text("issue_refund")
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.get_by_text("Your key may look but not decide.")).to_be_visible()
        # A hand-made form with the viewer's own CSRF token is refused as well.
        token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
        answer = page.request.post(
            f"{base_url}/ui/approvals/{pending.ticket_id}/approve",
            form={"csrf_token": token or ""},
        )
        assert answer.status == 403
    assert plane.get_ticket(pending.ticket_id).status == "pending"


def test_sign_in_with_a_bad_key_fails(sqlite_plane: ControlPlane, page: Page) -> None:
    plane = sqlite_plane
    with served(plane) as base_url:
        _sign_in(page, base_url, "acp_0123456789abcdef_" + "x" * 43)
        expect(page.get_by_role("alert")).to_have_text("That API key was not accepted.")
        _sign_in(page, base_url, plane.create_api_key("agent", agents=["*"]).key)
        expect(page.get_by_role("alert")).to_contain_text("agent keys cannot sign in")
        page.goto(f"{base_url}/ui/sessions")
        expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_the_live_feed_shows_new_events(sqlite_plane: ControlPlane, page: Page) -> None:
    plane = sqlite_plane
    pending = pending_refund(plane)
    # Under the dashboard's Content-Security-Policy: a blocked script or style would be
    # reported on the console (and the feed would not update).
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    with served(plane) as base_url:
        _sign_in(page, base_url, plane.create_api_key("viewer").key)
        page.get_by_role("link", name="Live events").click()
        feed = page.locator("#feed")
        expect(feed).to_contain_text("needs_approval")
        expect(feed).not_to_contain_text("session.killed")
        plane.kill_session(pending.session_id, reason="watched live")
        expect(feed.locator("tr").first).to_contain_text("session.killed")
        expect(feed.locator("tr").first).to_contain_text("watched live")
        for name in ("Approvals", "Sessions", "Tokens", "Audit"):
            page.get_by_role("link", name=name, exact=True).click()
    assert not [text for text in console if "Content Security Policy" in text], console
    # The stylesheet applies (it is a file: inline styles are refused).
    assert page.evaluate("getComputedStyle(document.querySelector('header')).height") == "52px"
