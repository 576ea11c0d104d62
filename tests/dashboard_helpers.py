"""The gateway (with its dashboard) served by uvicorn on a free local port, and a little
governed history to look at: for the dashboard's HTTP and browser tests and its screenshots."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import uvicorn

from agent_control_plane import ControlPlane
from agent_control_plane.gateway import create_app
from agent_control_plane.models import Decision

POLICY: dict[str, Any] = {
    "name": "dashboard-test",
    "tiers": {"always_approve": ["issue_refund"], "auto_approve": ["read_ticket"]},
    "approval_timeout": "1h",
}
CHROMIUM = "/usr/bin/chromium"
# USD per million tokens.
PRICES = {
    "gpt-4o-mini": {"input": "0.15", "output": "0.6"},
    "gpt-4o": {"input": "2.5", "output": "10"},
}


@contextmanager
def served(control_plane: ControlPlane) -> Iterator[str]:
    """The gateway app on 127.0.0.1:<free port> in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(control_plane), log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard's test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def refund(plane: ControlPlane, session_id: uuid.UUID, amount: str = "30") -> Decision:
    """The same governed refund every time: a pending ticket until someone decides."""
    return plane.govern(
        session_id, "issue_refund", resource="order/42", args={"amount": amount}, cost="0.5"
    )


def open_session(plane: ControlPlane, name: str, **options: Any) -> uuid.UUID:
    return plane.open_session(
        name,
        agent_id=options.pop("agent_id", "support-bot"),
        policy=POLICY,
        max_cost=options.pop("max_cost", Decimal(10)),
        max_actions=options.pop("max_actions", 20),
        **options,
    ).id


@dataclass
class Pending:
    session_id: uuid.UUID
    ticket_id: uuid.UUID


def pending_refund(plane: ControlPlane, name: str = "refund-42", **options: Any) -> Pending:
    session_id = open_session(plane, name, **options)
    plane.govern(session_id, "read_ticket", resource="ticket/42", cost="0.25")
    decision = refund(plane, session_id)
    assert decision.outcome == "needs_approval", decision
    assert decision.ticket_id is not None
    return Pending(session_id, decision.ticket_id)


class Browserless:
    """A signed-in (or not) HTTP client that keeps the dashboard's cookie, like a browser."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)

    def close(self) -> None:
        self.http.close()

    def csrf(self, path: str = "/ui/login") -> str:
        """The CSRF token the page at ``path`` puts in its forms."""
        page = self.http.get(path)
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None, page.text
        return match.group(1)

    def login(self, key: str) -> httpx.Response:
        return self.http.post("/ui/login", data={"api_key": key, "csrf_token": self.csrf()})

    def signed_in(self, key: str) -> Browserless:
        response = self.login(key)
        assert response.status_code == 303, response.text
        return self
