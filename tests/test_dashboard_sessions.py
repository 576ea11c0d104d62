"""Dashboard sessions: kept by the server, throttled, Secure over HTTPS, and every response
under a strict Content-Security-Policy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from agent_control_plane import ControlPlane
from agent_control_plane.cli.serve import server_config
from agent_control_plane.dashboard import app as dashboard_app
from agent_control_plane.dashboard import create_dashboard
from agent_control_plane.dashboard.headers import CONTENT_SECURITY_POLICY
from agent_control_plane.dashboard.throttle import SignInThrottle
from agent_control_plane.errors import AuthenticationError, InvalidInputError
from agent_control_plane.gateway import create_app
from tests.dashboard_helpers import Browserless, served
from tests.databases import TestDatabase


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'dashboard.db'}") as opened:
        yield opened


@pytest.fixture
def client(plane: ControlPlane) -> Iterator[Browserless]:
    with served(plane) as url:
        opened = Browserless(url)
        yield opened
        opened.close()


def _later(plane: ControlPlane, hours: float) -> None:
    """Move the control plane's clock ``hours`` ahead."""
    then = datetime.now(UTC) + timedelta(hours=hours)
    plane._runtime = replace(plane._runtime, clock=lambda: then)


# ---- the sign-in itself, on every database -------------------------------------------


def test_a_sign_in_lives_until_signed_out_and_only_its_hash_is_stored(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    issued = cp.create_api_key("approver", name="alice")
    started = cp.sign_in(issued.key)
    assert started.principal.key_id == issued.api_key.key_id
    assert cp.signed_in(started.token).identity == started.principal.identity
    assert started.token not in repr(started)
    with cp.engine.connect() as connection:
        stored = list(connection.execute(cp.tables.sign_ins.select()).mappings())
    assert len(stored) == 1
    assert started.token not in str(stored[0])
    cp.sign_out(started.token)
    with pytest.raises(AuthenticationError) as ended:
        cp.signed_in(started.token)
    assert ended.value.reason == "signed_out"
    cp.sign_out(started.token)  # again: nothing changes
    with pytest.raises(AuthenticationError) as unknown:
        cp.signed_in("not a token")
    assert unknown.value.reason == "unknown"


def test_a_sign_in_ends_at_its_expiry_and_with_its_key(
    control_plane: ControlPlane, database: TestDatabase
) -> None:
    cp = control_plane
    issued = cp.create_api_key("admin")
    brief = cp.sign_in(issued.key, lifetime=timedelta(hours=1))
    lasting = cp.sign_in(issued.key, lifetime=timedelta(hours=8))
    _later(cp, 2)
    with pytest.raises(AuthenticationError) as expired:
        cp.signed_in(brief.token)
    assert expired.value.reason == "expired"
    assert cp.signed_in(lasting.token).key_id == issued.api_key.key_id
    cp.revoke_api_key(issued.api_key.key_id)
    with pytest.raises(AuthenticationError) as revoked:
        cp.signed_in(lasting.token)
    assert revoked.value.reason == "revoked"


def test_bad_keys_and_lifetimes_start_nothing(control_plane: ControlPlane) -> None:
    cp = control_plane
    with pytest.raises(AuthenticationError):
        cp.sign_in("acp_" + "0" * 16 + "_" + "a" * 43)
    key = cp.create_api_key("viewer").key
    for lifetime in (timedelta(0), timedelta(days=31), 3600):
        with pytest.raises(InvalidInputError):
            cp.sign_in(key, lifetime=lifetime)  # type: ignore[arg-type]
    with cp.engine.connect() as connection:
        assert list(connection.execute(cp.tables.sign_ins.select())) == []


# ---- through the dashboard -------------------------------------------------------------


def test_an_agent_keys_sign_in_is_ended_at_once(plane: ControlPlane, client: Browserless) -> None:
    refused = client.login(plane.create_api_key("agent", agents=["*"]).key)
    assert refused.status_code == 403
    with plane.engine.connect() as connection:
        rows = list(connection.execute(plane.tables.sign_ins.select()).mappings())
    assert len(rows) == 1
    assert rows[0]["signed_out_at"] is not None


def test_a_cookie_replayed_after_sign_out_is_refused(
    plane: ControlPlane, client: Browserless
) -> None:
    client.signed_in(plane.create_api_key("viewer").key)
    copied = httpx.Cookies(client.http.cookies)
    assert client.http.get("/ui/sessions").status_code == 200
    page = client.http.get("/ui/sessions")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    assert client.http.post("/ui/logout", data={"csrf_token": token.group(1)}).status_code == 303
    # The old cookie, kept by an attacker (or another tab), no longer signs anyone in.
    with httpx.Client(base_url=str(client.http.base_url), cookies=copied) as replay:
        refused = replay.get("/ui/sessions", follow_redirects=False)
    assert refused.status_code == 303
    assert refused.headers["location"].endswith("/ui/login")


def test_a_dashboard_session_expires(plane: ControlPlane, client: Browserless) -> None:
    client.signed_in(plane.create_api_key("viewer").key)
    assert client.http.get("/ui/sessions").status_code == 200
    _later(plane, 9)  # past the default eight hours
    assert client.http.get("/ui/sessions").status_code == 303


def test_failed_sign_ins_are_throttled_per_address_and_per_key(plane: ControlPlane) -> None:
    good = plane.create_api_key("viewer")
    wrong_secret = good.key[:-4] + ("aaaa" if not good.key.endswith("aaaa") else "bbbb")
    ticks = [0.0]
    throttle = SignInThrottle(failures=3, window=60, clock=lambda: ticks[0])
    app = create_dashboard(plane, throttle=throttle, path="/")

    async def attempts() -> list[int]:
        seen = []
        async with _client(app, "10.0.0.1") as browser:
            for _ in range(4):
                seen.append((await _login(browser, wrong_secret)).status_code)
            refused = await _login(browser, good.key)  # even the right key waits here
            seen.append(refused.status_code)
            assert int(refused.headers["retry-after"]) == 60
        async with _client(app, "10.0.0.2") as other:
            # Another address, but the same key id: held back too.
            seen.append((await _login(other, good.key)).status_code)
            ticks[0] = 61  # the window has passed
            seen.append((await _login(other, good.key)).status_code)
        return seen

    assert asyncio.run(attempts()) == [401, 401, 401, 429, 429, 429, 303]


def test_every_response_has_the_security_headers(plane: ControlPlane, client: Browserless) -> None:
    responses = [
        client.http.get("/ui/login"),
        client.http.get("/ui/sessions"),  # a redirect
        client.http.get("/ui/static/dashboard.css"),
        client.http.post("/ui/login", data={"api_key": "x"}),  # refused: no CSRF token
    ]
    client.signed_in(plane.create_api_key("viewer").key)
    responses += [client.http.get("/ui/events"), client.http.get("/ui/no-such-page")]
    for response in responses:
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
    events = client.http.get("/ui/events").text
    assert "<script>" not in events
    assert "<style" not in events
    assert "style=" not in events


def test_pages_use_no_inline_script_or_style() -> None:
    for template in Path(dashboard_app.TEMPLATES).glob("*.html"):
        text = template.read_text()
        assert "<script>" not in text, template.name
        assert "<style" not in text, template.name
        assert "style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name


def test_the_cookie_is_secure_over_https_and_from_a_trusted_proxy_only(
    plane: ControlPlane,
) -> None:
    async def cookie(app: object, base_url: str, headers: dict[str, str] | None = None) -> str:
        """The cookie the login page sets (its CSRF token's session)."""
        transport = httpx.ASGITransport(app=app, client=("10.1.1.1", 4000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=headers
        ) as browser:
            response = await browser.get("/ui/login")
            assert response.status_code == 200
            return response.headers["set-cookie"].lower()

    def served_app(trusted: str) -> object:
        config = server_config(create_app(plane), "127.0.0.1", 8000, "warning", trusted)
        config.load()
        return config.loaded_app

    https = {"x-forwarded-proto": "https"}
    assert "secure" in asyncio.run(cookie(create_app(plane), "https://acp.test"))
    assert "secure" not in asyncio.run(cookie(create_app(plane), "http://acp.test"))
    assert "secure" in asyncio.run(cookie(served_app("10.1.1.1"), "http://acp.test", https))
    # A client that is not a trusted proxy cannot claim HTTPS for itself.
    assert "secure" not in asyncio.run(cookie(served_app("127.0.0.1"), "http://acp.test", https))
    always = create_app(plane, secure_cookies=True)
    assert "secure" in asyncio.run(cookie(always, "http://acp.test"))


def _client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://acp.test")


async def _login(browser: httpx.AsyncClient, key: str, path: str = "") -> httpx.Response:
    page = await browser.get(f"{path}/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return await browser.post(f"{path}/login", data={"api_key": key, "csrf_token": token.group(1)})


def test_an_unexpected_error_page_has_the_security_headers_too(plane: ControlPlane) -> None:
    app = create_dashboard(plane, path="/")

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://acp.test") as browser:
            return await browser.get("/broken")

    response = asyncio.run(fetch())
    assert response.status_code == 500
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
