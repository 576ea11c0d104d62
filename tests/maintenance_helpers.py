"""Fixtures shared by the maintenance tests: overdue tickets, expired holds, a webhook."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select

from agent_control_plane import ControlPlane
from agent_control_plane.rules.tokens import Identity

POLICY: dict[str, Any] = {
    "name": "maintained",
    "tiers": {"always_approve": ["issue_refund"], "unrestricted": ["work"]},
    "approval_timeout": "1h",
}
PRICES = {"small": {"input": "1", "output": "2"}}
ACME = Identity(org="acme")
TINY = timedelta(milliseconds=1)


def open_session(cp: ControlPlane, policy: dict[str, Any] = POLICY) -> uuid.UUID:
    return cp.open_session(agent_id="agent", policy=policy, max_cost=100, max_actions=1000).id


def request_approvals(cp: ControlPlane, sid: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``count`` pending tickets on the session, one per distinct refund."""
    tickets = []
    for n in range(count):
        decision = cp.govern(sid, "issue_refund", args={"n": n}, cost="0")
        assert decision.ticket_id is not None
        tickets.append(decision.ticket_id)
    return tickets


def hold_expiring_tokens(cp: ControlPlane, count: int) -> None:
    """``count`` holds of 100 tokens on one org budget, each expired at once."""
    cp.set_prices(PRICES)
    cp.set_token_budget(ACME, "day", max_tokens=1_000_000)
    for _ in range(count):
        cp.reserve_tokens(
            ACME, "small", input_tokens=60, max_output_tokens=40, ttl=timedelta(microseconds=1)
        )


def window_counters(cp: ControlPlane) -> tuple[int, int, Decimal, int]:
    """(tokens used, tokens reserved, cost reserved, requests reserved) over all windows."""
    w = cp.tables.token_windows.c
    with cp.engine.connect() as connection:
        row = connection.execute(
            select(
                func.sum(w.tokens_used),
                func.sum(w.tokens_reserved),
                func.sum(w.cost_reserved),
                func.sum(w.requests_reserved),
            )
        ).one()
    return int(row[0] or 0), int(row[1] or 0), Decimal(row[2] or 0), int(row[3] or 0)


def reservation_statuses(cp: ControlPlane) -> dict[str, int]:
    r = cp.tables.token_reservations.c
    with cp.engine.connect() as connection:
        rows = connection.execute(select(r.status, func.count()).group_by(r.status))
        return {status: int(count) for status, count in rows}


def event_kinds(cp: ControlPlane, sid: uuid.UUID) -> list[str]:
    return [event.kind for event in cp.events(sid)]


def wait_past(duration: timedelta) -> None:
    time.sleep(duration.total_seconds() + 0.01)


@dataclass
class Webhook:
    """A real HTTP endpoint on 127.0.0.1 that records JSON bodies; ``status`` is what it
    answers."""

    url: str = ""
    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def webhook_server(status: int = 200) -> Iterator[Webhook]:
    hook = Webhook(status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            assert self.headers.get("Content-Type") == "application/json"
            if hook.status == 200:
                hook.bodies.append(body)
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/escalations"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
