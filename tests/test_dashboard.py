"""The operator dashboard over HTTP (a real server, a real database): sign-in, cookies, CSRF,
roles, tenants and what each page shows."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import update

from agent_control_plane import ControlPlane
from agent_control_plane.dashboard import actions, pages
from agent_control_plane.dashboard import app as dashboard_app
from agent_control_plane.gateway import create_app
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.dashboard_helpers import PRICES, Browserless, pending_refund, served
from tests.gateway_helpers import Client


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'dashboard.db'}") as opened:
        yield opened


@pytest.fixture
def base_url(plane: ControlPlane) -> Iterator[str]:
    with served(plane) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[Browserless]:
    opened = Browserless(base_url)
    yield opened
    opened.close()


def _key(plane: ControlPlane, role: str, **options: Any) -> str:
    return plane.create_api_key(role, **options).key


def test_sign_in_sets_a_signed_httponly_lax_cookie(
    plane: ControlPlane, client: Browserless
) -> None:
    assert client.http.get("/ui/approvals").headers["location"].endswith("/ui/login")
    response = client.login(_key(plane, "approver", name="alice"))
    assert response.status_code == 303
    assert response.headers["location"].endswith("/ui/approvals")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{dashboard_app.SESSION_COOKIE}=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "path=/ui" in cookie.lower()
    page = client.http.get("/ui/approvals")
    assert page.status_code == 200
    assert "alice (key:" in page.text


def test_bad_keys_and_agent_keys_cannot_sign_in(plane: ControlPlane, client: Browserless) -> None:
    for bad in ("nonsense", "acp_" + "0" * 16 + "_" + "a" * 43):
        response = client.login(bad)
        assert response.status_code == 401
        assert "That API key was not accepted." in response.text
    revoked = plane.create_api_key("admin")
    plane.revoke_api_key(revoked.api_key.key_id)
    assert client.login(revoked.key).status_code == 401
    refused = client.login(_key(plane, "agent", agents=["*"]))
    assert refused.status_code == 403
    assert "agent keys cannot sign in" in refused.text
    assert client.http.get("/ui/sessions").status_code == 303  # still signed out


def test_a_post_without_the_right_csrf_token_is_refused(
    plane: ControlPlane, client: Browserless
) -> None:
    pending = pending_refund(plane)
    key = _key(plane, "admin")
    login = client.http.post("/ui/login", data={"api_key": key})
    assert login.status_code == 403
    client.signed_in(key)
    token = client.csrf("/ui/approvals")
    approve = f"/ui/approvals/{pending.ticket_id}/approve"
    kill = {"scope": "session", "target": str(pending.session_id)}
    for data in ({}, {"csrf_token": ""}, {"csrf_token": token[:-1] + "x"}):
        assert client.http.post(approve, data=data).status_code == 403
        assert client.http.post("/ui/kill", data={**kill, **data}).status_code == 403
        assert client.http.post("/ui/logout", data=data).status_code == 403
    assert plane.get_ticket(pending.ticket_id).status == "pending"
    assert plane.get_session(pending.session_id).status == "active"
    # The same forms with the session's token go through.
    assert client.http.post(approve, data={"csrf_token": token}).status_code == 303
    assert plane.get_ticket(pending.ticket_id).status == "approved"
    assert client.http.post("/ui/kill", data={**kill, "csrf_token": token}).status_code == 303
    assert plane.get_session(pending.session_id).status == "aborted"


def test_every_dashboard_post_route_checks_the_csrf_token(
    plane: ControlPlane, client: Browserless
) -> None:
    client.signed_in(_key(plane, "admin"))
    posts = [
        route.path
        for router in (pages.router, actions.router)
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    ]
    assert len(posts) >= 5
    for path in posts:
        url = "/ui" + path.replace("{ticket_id}", str(uuid.uuid4()))
        assert client.http.post(url, data={"scope": "all"}).status_code == 403, path


def test_deny_records_the_signed_in_key_never_a_form_field(
    plane: ControlPlane, client: Browserless
) -> None:
    pending = pending_refund(plane)
    issued = plane.create_api_key("approver", name="bob")
    client.signed_in(issued.key)
    token = client.csrf("/ui/approvals")
    path = f"/ui/approvals/{pending.ticket_id}/deny"
    empty = client.http.post(path, data={"csrf_token": token, "reason": " "})
    assert empty.status_code == 422
    assert plane.get_ticket(pending.ticket_id).status == "pending"
    data = {"csrf_token": token, "reason": "too large", "by": "mallory", "decided_by": "mallory"}
    assert client.http.post(path, data=data).status_code == 303
    ticket = plane.get_ticket(pending.ticket_id)
    assert (ticket.status, ticket.decision_reason) == ("denied", "too large")
    assert ticket.decided_by == f"bob (key:{issued.api_key.key_id})"
    page = client.http.get("/ui/approvals")
    assert "Denied issue_refund." in page.text
    assert "Nothing is waiting for a decision." in page.text
    again = client.http.post(path, data={"csrf_token": token, "reason": "again"})
    assert again.status_code == 409


def test_a_viewer_may_look_but_not_act(plane: ControlPlane, client: Browserless) -> None:
    pending = pending_refund(plane)
    client.signed_in(_key(plane, "viewer"))
    page = client.http.get("/ui/approvals")
    assert "issue_refund" in page.text
    assert "Approve</button>" not in page.text
    assert "Kill" not in client.http.get("/ui/sessions").text
    token = client.csrf("/ui/approvals")
    refused = client.http.post(
        f"/ui/approvals/{pending.ticket_id}/approve", data={"csrf_token": token}
    )
    assert refused.status_code == 403
    assert "may not approve" in refused.text
    kill = {"csrf_token": token, "scope": "session", "target": str(pending.session_id)}
    assert client.http.post("/ui/kill", data=kill).status_code == 403
    assert plane.get_ticket(pending.ticket_id).status == "pending"
    assert plane.get_session(pending.session_id).status == "active"


def test_an_approver_decides_but_cannot_kill(plane: ControlPlane, client: Browserless) -> None:
    pending = pending_refund(plane)
    client.signed_in(_key(plane, "approver"))
    assert "Approve</button>" in client.http.get("/ui/approvals").text
    assert "Kill" not in client.http.get(f"/ui/sessions/{pending.session_id}").text
    confirm = client.http.get(f"/ui/kill?scope=session&target={pending.session_id}")
    assert confirm.status_code == 403
    token = client.csrf("/ui/approvals")
    kill = {"csrf_token": token, "scope": "all"}
    assert client.http.post("/ui/kill", data=kill).status_code == 403
    assert plane.get_session(pending.session_id).status == "active"


def test_a_tenant_key_sees_and_decides_only_its_tenant(
    plane: ControlPlane, client: Browserless
) -> None:
    ours = pending_refund(plane, "acme-refund", tenant="acme")
    theirs = pending_refund(plane, "globex-refund", tenant="globex")
    client.signed_in(_key(plane, "admin", tenant="acme"))
    approvals = client.http.get("/ui/approvals").text
    assert str(ours.ticket_id) in approvals
    assert str(theirs.ticket_id) not in approvals
    sessions = client.http.get("/ui/sessions").text
    assert "acme-refund" in sessions
    assert "globex-refund" not in sessions
    assert client.http.get(f"/ui/sessions/{theirs.session_id}").status_code == 404
    token = client.csrf("/ui/approvals")
    refused = client.http.post(
        f"/ui/approvals/{theirs.ticket_id}/approve", data={"csrf_token": token}
    )
    assert refused.status_code == 404
    assert plane.get_ticket(theirs.ticket_id).status == "pending"
    kill = {"csrf_token": token, "scope": "tenant", "target": "globex"}
    assert client.http.post("/ui/kill", data=kill).status_code == 403
    kill_all = {"csrf_token": token, "scope": "all"}
    assert client.http.post("/ui/kill", data=kill_all).status_code == 303
    assert plane.get_session(ours.session_id).status == "aborted"
    assert plane.get_session(theirs.session_id).status == "active"
    # The tenant's "all" stands: listed with a Lift button; another tenant's kill is not shown.
    plane.kill_agent("intruder", tenant="globex")
    sessions = client.http.get("/ui/sessions").text
    assert "Standing kills" in sessions
    assert "tenant &#39;acme&#39;" in sessions
    assert "intruder" not in sessions
    lift = {"csrf_token": token, "scope": "all"}
    assert client.http.post("/ui/kill/lift", data={"scope": "all"}).status_code == 403  # no CSRF
    assert client.http.post("/ui/kill/lift", data=lift).status_code == 303
    assert [kill.target for kill in plane.list_kills()] == ["agent 'intruder' in tenant 'globex'"]
    assert "Standing kills" not in client.http.get("/ui/sessions").text
    feed = client.http.get("/ui/events.json").json()
    assert {event["session_id"] for event in feed["events"]} == {str(ours.session_id)}


def test_a_revoked_key_is_signed_out_and_logout_ends_the_session(
    plane: ControlPlane, base_url: str
) -> None:
    issued = plane.create_api_key("approver")
    first, second = Browserless(base_url), Browserless(base_url)
    try:
        first.signed_in(issued.key)
        second.signed_in(issued.key)
        assert first.http.get("/ui/sessions").status_code == 200
        token = first.csrf("/ui/sessions")
        assert first.http.post("/ui/logout", data={"csrf_token": token}).status_code == 303
        assert first.http.get("/ui/sessions").status_code == 303
        assert second.http.get("/ui/sessions").status_code == 200
        plane.revoke_api_key(issued.api_key.key_id)
        assert second.http.get("/ui/sessions").status_code == 303
        assert second.http.get("/ui/events.json").status_code == 401
    finally:
        first.close()
        second.close()


def test_pages_show_budgets_events_tokens_and_audit(control_plane: ControlPlane) -> None:
    with served(control_plane) as base_url:
        client = Browserless(base_url)
        try:
            _pages_show_budgets_events_tokens_and_audit(control_plane, client)
        finally:
            client.close()


def _pages_show_budgets_events_tokens_and_audit(plane: ControlPlane, client: Browserless) -> None:
    pending = pending_refund(plane, max_actions=4)
    plane.set_prices(PRICES)
    plane.record_usage(
        Identity(org="acme"),
        "gpt-4o-mini",
        TokenUsage(input_tokens=1200, output_tokens=300),
        session_id=pending.session_id,
    )
    client.signed_in(_key(plane, "viewer"))
    sessions = client.http.get("/ui/sessions").text
    # read_ticket charged one action and $0.25: bars at 25 % and 2.5 %.
    assert re.search(r'class="bar ok" title="25.0 %"', sessions)
    assert "$0.25 / $10.00" in sessions
    assert "1 / 4" in sessions
    detail = client.http.get(f"/ui/sessions/{pending.session_id}").text
    assert "read_ticket" in detail
    assert "needs_approval" in detail
    feed = client.http.get("/ui/events.json").json()
    assert [event["seq"] for event in feed["events"]] == sorted(
        event["seq"] for event in feed["events"]
    )
    assert client.http.get(f"/ui/events.json?cursor={feed['cursor']}").json()["events"] == []
    plane.kill_session(pending.session_id, reason="test")
    newer = client.http.get(f"/ui/events.json?cursor={feed['cursor']}").json()["events"]
    assert [(event["kind"], event["reason"]) for event in newer] == [("session.killed", "test")]
    tokens = client.http.get("/ui/tokens").text
    assert "gpt-4o-mini" in tokens
    assert "1,500" in tokens
    assert "<rect" in tokens
    audit = client.http.get("/ui/audit").text
    assert 'id="audit-status">intact' in audit
    events = plane.tables.events
    with plane.engine.begin() as connection:
        connection.execute(
            update(events)
            .where(events.c.session_id == pending.session_id, events.c.seq == 1)
            .values(reason="edited")
        )
    tampered = client.http.get("/ui/audit").text
    assert 'id="audit-status">tampered' in tampered
    assert "edited" in tampered


def test_what_agents_write_is_escaped(plane: ControlPlane, client: Browserless) -> None:
    pending = pending_refund(plane, "<script>alert(1)</script>", agent_id="<b>bot</b>")
    client.signed_in(_key(plane, "admin"))
    for path in ("/ui/approvals", "/ui/sessions", f"/ui/sessions/{pending.session_id}"):
        page = client.http.get(path).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;b&gt;bot&lt;/b&gt;" in page
        assert "<b>bot</b>" not in page


def test_create_app_can_leave_the_dashboard_out(plane: ControlPlane) -> None:
    assert Client(create_app(plane)).get("/ui/login").status_code == 200
    assert Client(create_app(plane, dashboard=False)).get("/ui/login").status_code == 404


def test_apps_sharing_the_secret_accept_each_others_cookies(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key(plane, "viewer")
    monkeypatch.setenv(dashboard_app.SECRET_VARIABLE, "one secret for every worker")
    first, second = create_app(plane), create_app(plane)
    monkeypatch.delenv(dashboard_app.SECRET_VARIABLE)
    stranger = create_app(plane)

    async def statuses() -> list[int]:
        async with _asgi_client(first) as browser:
            login = await browser.get("/ui/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
            assert token is not None
            data = {"api_key": key, "csrf_token": token.group(1)}
            assert (await browser.post("/ui/login", data=data)).status_code == 303
            cookies = browser.cookies
        seen = []
        for app in (first, second, stranger):
            async with _asgi_client(app, cookies) as browser:
                seen.append((await browser.get("/ui/sessions")).status_code)
        return seen

    assert asyncio.run(statuses()) == [200, 200, 303]


def _asgi_client(app: FastAPI, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://acp.test", cookies=cookies)
