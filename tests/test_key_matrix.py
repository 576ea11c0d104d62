"""What each API key can do: every gateway endpoint, by role, tenant-confined or global,
on its own or another agent, in its own or another tenant, with the exact status code; and the same
own/other checks for the MCP HTTP proxy's key verifier. The endpoints come from the app's
routes, so a new endpoint without an entry here fails the test."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.gateway import create_app
from agent_control_plane.integrations.mcp_proxy.keys import TOOLS_SCOPE, ApiKeyVerifier
from agent_control_plane.rules.tokens import Identity
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY

OK = "ok"
NONE_OK = (403, 403, 403, 403)
ALL_OK = (OK, OK, OK, OK)
# Targets, in this order everywhere: what the bound agent key may touch, and what not.
TARGETS = (("bot-1", "acme"), ("bot-2", "acme"), ("bot-1", "globex"), ("bot-2", "globex"))
ROLES = ("agent", "agent*", "approver", "admin", "viewer")
# Per role: (statuses with a key confined to tenant acme, statuses with a global key).
Pattern = dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]

# Acting on a session, or on what hangs off one (a decision, a reservation).
ACT: Pattern = {
    "agent": ((OK, 403, 404, 404), (OK, 403, OK, 403)),
    "agent*": ((OK, OK, 404, 404), ALL_OK),
    "approver": (NONE_OK, NONE_OK),
    "admin": ((OK, OK, 404, 404), ALL_OK),
    "viewer": (NONE_OK, NONE_OK),
}
# Reading one session or ticket by its id.
READ_OWN: Pattern = {
    "agent": ((OK, 403, 404, 404), (OK, 403, OK, 403)),
    "agent*": ((OK, OK, 404, 404), ALL_OK),
    "approver": ((OK, OK, 404, 404), ALL_OK),
    "admin": ((OK, OK, 404, 404), ALL_OK),
    "viewer": ((OK, OK, 404, 404), ALL_OK),
}
# Reading through a listing or report that names a session.
READ_SESSION: Pattern = {
    "agent": (NONE_OK, NONE_OK),
    "agent*": (NONE_OK, NONE_OK),
    "approver": ((OK, OK, 404, 404), ALL_OK),
    "admin": ((OK, OK, 404, 404), ALL_OK),
    "viewer": ((OK, OK, 404, 404), ALL_OK),
}
# A listing that names a tenant (and an agent).
READ_TENANT: Pattern = {
    "agent": (NONE_OK, NONE_OK),
    "agent*": (NONE_OK, NONE_OK),
    "approver": ((OK, OK, 403, 403), ALL_OK),
    "admin": ((OK, OK, 403, 403), ALL_OK),
    "viewer": ((OK, OK, 403, 403), ALL_OK),
}
# A listing of everything the key may see (the target plays no part).
READ_ANY: Pattern = {
    "agent": (NONE_OK, NONE_OK),
    "agent*": (NONE_OK, NONE_OK),
    "approver": (ALL_OK, ALL_OK),
    "admin": (ALL_OK, ALL_OK),
    "viewer": (ALL_OK, ALL_OK),
}
# Approving or denying a ticket of the target's session.
APPROVE: Pattern = {
    "agent": (NONE_OK, NONE_OK),
    "agent*": (NONE_OK, NONE_OK),
    "approver": ((OK, OK, 404, 404), ALL_OK),
    "admin": ((OK, OK, 404, 404), ALL_OK),
    "viewer": (NONE_OK, NONE_OK),
}
# An operator's change to a record of the target's (a session, a budget of its org).
OPERATE: Pattern = {
    "agent": (NONE_OK, NONE_OK),
    "agent*": (NONE_OK, NONE_OK),
    "approver": (NONE_OK, NONE_OK),
    "admin": ((OK, OK, 404, 404), ALL_OK),
    "viewer": (NONE_OK, NONE_OK),
}
# An operator's change that names a tenant (a budget for it, lifting a kill in it).
OPERATE_TENANT: Pattern = {**OPERATE, "admin": ((OK, OK, 403, 403), ALL_OK)}
# An operator's change to nothing of a tenant's (a policy document).
OPERATE_ANY: Pattern = {**OPERATE, "admin": (ALL_OK, ALL_OK)}
# Opening a session for the target agent in the target tenant.
OPEN: Pattern = {
    "agent": ((OK, 403, 403, 403), (OK, 403, OK, 403)),
    "agent*": ((OK, OK, 403, 403), ALL_OK),
    "approver": (NONE_OK, NONE_OK),
    "admin": ((OK, OK, 403, 403), ALL_OK),
    "viewer": (NONE_OK, NONE_OK),
}
PUBLIC: Pattern = {role: (ALL_OK, ALL_OK) for role in ROLES}
# Who may call tools through an MCP HTTP proxy serving the target's session.
MCP: Pattern = {
    "agent": ((OK, 403, 403, 403), (OK, 403, OK, 403)),
    "agent*": ((OK, OK, 403, 403), ALL_OK),
    "approver": (NONE_OK, NONE_OK),
    "admin": ((OK, OK, 403, 403), ALL_OK),
    "viewer": (NONE_OK, NONE_OK),
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    """A database holding, for each target, a session, a pending ticket and a decision;
    and factories for what an endpoint changes (a fresh session, ticket, reservation)."""

    cp: ControlPlane
    policy_id: uuid.UUID
    sessions: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    tickets: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def session(self, agent: str, tenant: str) -> uuid.UUID:
        opened = self.cp.open_session(
            agent_id=agent, tenant=tenant, policy=self.policy_id, max_cost=10, max_actions=10_000
        )
        return opened.id

    def paused(self, agent: str, tenant: str) -> uuid.UUID:
        sid = self.session(agent, tenant)
        self.cp.pause_session(sid)
        return sid

    def ticket(self, agent: str, tenant: str) -> uuid.UUID:
        decision = self.cp.govern(
            self.sessions[agent, tenant], "refund", args={"n": next(self.counter)}
        )
        assert decision.ticket_id is not None
        return decision.ticket_id

    def decision(self, agent: str, tenant: str) -> dict[str, Any]:
        return self.cp.govern(self.sessions[agent, tenant], "read").to_json_data()

    def reservation(self, agent: str, tenant: str) -> uuid.UUID:
        identity = Identity(org=tenant, agent=agent)
        return self.cp.reserve_tokens(identity, "small", input_tokens=1, max_output_tokens=1).id

    def budget(self, agent: str, tenant: str) -> uuid.UUID:
        identity = Identity(org=tenant, agent=agent, user=self.unique())
        return self.cp.set_token_budget(identity, "day", max_tokens=1000).id

    def unique(self) -> str:
        return f"u{next(self.counter)}"


USAGE = {"input_tokens": 1, "output_tokens": 1}
TOKENS = {"model": "small", "input_tokens": 1, "max_output_tokens": 1}
Build = Callable[[World, str, str], Request]


def _at(method: str, template: str, json: Any = None, **params: Any) -> Build:
    """A request on the target's shared session (and its ticket)."""

    def build(world: World, agent: str, tenant: str) -> Request:
        path = template.format(
            sid=world.sessions[agent, tenant], ticket=world.tickets[agent, tenant]
        )
        query = {
            key: str(world.sessions[agent, tenant]) if value == "{sid}" else value
            for key, value in params.items()
        }
        return Request(method, path, json, query)

    return build


def _fresh(method: str, template: str, make: str, json: Any = None) -> Build:
    """A request on a record made for this one request (it changes it)."""

    def build(world: World, agent: str, tenant: str) -> Request:
        made = getattr(world, make)(agent, tenant)
        return Request(method, template.format(made), json)

    return build


def _fixed(method: str, path: str, json: Any = None, **params: Any) -> Build:
    return lambda world, agent, tenant: Request(method, path, json, params)


def _open(world: World, agent: str, tenant: str) -> Request:
    body = {
        "agent_id": agent,
        "tenant": tenant,
        "policy": str(world.policy_id),
        "max_cost": "1",
        "max_actions": 5,
    }
    return Request("POST", "/v1/sessions", body)


def _outcome(world: World, agent: str, tenant: str) -> Request:
    body = {"decision": world.decision(agent, tenant), "status": "succeeded"}
    return Request("POST", "/v1/outcomes", body)


def _kill(world: World, agent: str, tenant: str) -> Request:
    body = {"scope": "session", "target": str(world.session(agent, tenant))}
    return Request("POST", "/v1/kill", body)


def _lift(world: World, agent: str, tenant: str) -> Request:
    return Request("POST", "/v1/kill/lift", {"scope": "agent", "target": agent, "tenant": tenant})


def _set_budget(world: World, agent: str, tenant: str) -> Request:
    identity = {"org": tenant, "agent": agent, "user": world.unique()}
    return Request("POST", "/v1/budgets", {"identity": identity, "period": "day", "max_tokens": 9})


def _reserve(world: World, agent: str, tenant: str) -> Request:
    body = {"identity": {"agent": agent}, "session_id": str(world.sessions[agent, tenant])}
    return Request("POST", "/v1/tokens/reservations", {**body, **TOKENS})


def _record_usage(world: World, agent: str, tenant: str) -> Request:
    body = {
        "identity": {"agent": agent},
        "session_id": str(world.sessions[agent, tenant]),
        "model": "small",
        "usage": USAGE,
    }
    return Request("POST", "/v1/tokens/usage", body)


def _list_sessions(world: World, agent: str, tenant: str) -> Request:
    return Request("GET", "/v1/sessions", params={"tenant": tenant, "agent_id": agent})


S = "/v1/sessions/{sid}"
T = "/v1/approvals/{ticket}"
# (method, route path) -> (who may, the status when allowed, the request for a target)
MATRIX: dict[tuple[str, str], tuple[Pattern, int, Build]] = {
    ("GET", "/healthz"): (PUBLIC, 200, _fixed("GET", "/healthz")),
    ("GET", "/readyz"): (PUBLIC, 200, _fixed("GET", "/readyz")),
    ("POST", "/v1/sessions"): (OPEN, 201, _open),
    ("GET", "/v1/sessions"): (READ_TENANT, 200, _list_sessions),
    ("GET", "/v1/sessions/{session_id}"): (READ_OWN, 200, _at("GET", S)),
    ("POST", "/v1/sessions/{session_id}/pause"): (
        OPERATE,
        200,
        _fresh("POST", "/v1/sessions/{}/pause", "session", {}),
    ),
    ("POST", "/v1/sessions/{session_id}/resume"): (
        OPERATE,
        200,
        _fresh("POST", "/v1/sessions/{}/resume", "paused", {}),
    ),
    ("POST", "/v1/sessions/{session_id}/complete"): (
        ACT,
        200,
        _fresh("POST", "/v1/sessions/{}/complete", "session", {}),
    ),
    ("POST", "/v1/sessions/{session_id}/heartbeat"): (ACT, 200, _at("POST", S + "/heartbeat")),
    ("POST", "/v1/sessions/{session_id}/govern"): (
        ACT,
        200,
        _at("POST", S + "/govern", {"action": "read"}),
    ),
    ("POST", "/v1/outcomes"): (ACT, 201, _outcome),
    ("POST", "/v1/sessions/{session_id}/events"): (
        ACT,
        201,
        _at("POST", S + "/events", {"kind": "app.note"}),
    ),
    ("GET", "/v1/sessions/{session_id}/events"): (READ_OWN, 200, _at("GET", S + "/events")),
    ("GET", "/v1/approvals"): (READ_SESSION, 200, _at("GET", "/v1/approvals", session_id="{sid}")),
    ("GET", "/v1/approvals/{ticket_id}"): (READ_OWN, 200, _at("GET", T)),
    ("POST", "/v1/approvals/{ticket_id}/approve"): (
        APPROVE,
        200,
        _fresh("POST", "/v1/approvals/{}/approve", "ticket", {}),
    ),
    ("POST", "/v1/approvals/{ticket_id}/deny"): (
        APPROVE,
        200,
        _fresh("POST", "/v1/approvals/{}/deny", "ticket", {"reason": "no"}),
    ),
    ("GET", "/v1/approvals/{ticket_id}/wait"): (READ_OWN, 200, _at("GET", T + "/wait", timeout=0)),
    ("POST", "/v1/kill"): (OPERATE, 200, _kill),
    ("POST", "/v1/kill/lift"): (OPERATE_TENANT, 200, _lift),
    ("GET", "/v1/kills"): (READ_ANY, 200, _fixed("GET", "/v1/kills")),
    ("GET", "/v1/events"): (READ_ANY, 200, _fixed("GET", "/v1/events")),
    ("GET", "/v1/events/stream"): (
        READ_ANY,
        200,
        _fixed("GET", "/v1/events/stream", cursor="0", max_events=1, poll_interval=0.05),
    ),
    ("POST", "/v1/budgets"): (OPERATE_TENANT, 201, _set_budget),
    ("GET", "/v1/budgets"): (READ_ANY, 200, _fixed("GET", "/v1/budgets")),
    ("GET", "/v1/budgets/status"): (READ_ANY, 200, _fixed("GET", "/v1/budgets/status")),
    ("DELETE", "/v1/budgets/{budget_id}"): (
        OPERATE,
        204,
        _fresh("DELETE", "/v1/budgets/{}", "budget"),
    ),
    ("POST", "/v1/tokens/reservations"): (ACT, 201, _reserve),
    ("POST", "/v1/tokens/reservations/{reservation_id}/settle"): (
        ACT,
        200,
        _fresh("POST", "/v1/tokens/reservations/{}/settle", "reservation", USAGE),
    ),
    ("POST", "/v1/tokens/reservations/{reservation_id}/release"): (
        ACT,
        200,
        _fresh("POST", "/v1/tokens/reservations/{}/release", "reservation"),
    ),
    ("POST", "/v1/tokens/usage"): (ACT, 201, _record_usage),
    ("GET", "/v1/tokens/usage"): (READ_ANY, 200, _fixed("GET", "/v1/tokens/usage")),
    ("GET", "/v1/audit/verify"): (
        READ_SESSION,
        200,
        _at("GET", "/v1/audit/verify", session_id="{sid}"),
    ),
    ("POST", "/v1/policies"): (OPERATE_ANY, 201, _fixed("POST", "/v1/policies", POLICY)),
    ("GET", "/v1/policies"): (READ_ANY, 200, _fixed("GET", "/v1/policies")),
}


def _key_options(role: str, confined: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"tenant": "acme" if confined else None}
    if role == "agent":
        options["agents"] = ["bot-1"]
    elif role == "agent*":
        options["agents"] = ["*"]
    return options


def _role(role: str) -> str:
    return "agent" if role.startswith("agent") else role


def _expected(pattern: Pattern, ok: int, role: str, confined: bool) -> tuple[int, ...]:
    statuses = pattern[role][0 if confined else 1]
    return tuple(ok if status == OK else status for status in statuses)


def test_every_endpoint_has_a_matrix_entry(tmp_path: Any) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'routes.db'}") as cp:
        routes = _endpoints(create_app(cp))
    assert len(routes) > 30
    assert routes == set(MATRIX)


def _endpoints(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every API route, through included routers (FastAPI ≥ 0.160 keeps
    them behind wrappers that iter_route_contexts opens)."""
    iterate = getattr(routing, "iter_route_contexts", None)
    contexts = list(app.routes) if iterate is None else list(iterate(app.routes))
    found: set[tuple[str, str]] = set()
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute):
            methods: set[str] = getattr(context, "methods", None) or set()
            found.update((method, str(getattr(context, "path", ""))) for method in methods)
    return found


@asynccontextmanager
async def _client(cp: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(cp, dashboard=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://acp") as client:
        yield client


async def test_what_each_key_may_do_on_every_endpoint(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as cp:
        cp.set_prices({"small": {"input": "1", "output": "2"}})
        policy = {**POLICY, "name": "matrix", "limits": {"max_cost": "10", "max_actions": 10_000}}
        world = World(cp, cp.apply_policy(policy).id)
        for agent, tenant in TARGETS:
            world.sessions[agent, tenant] = world.session(agent, tenant)
            world.tickets[agent, tenant] = world.ticket(agent, tenant)
        keys = {
            (role, confined): cp.create_api_key(_role(role), **_key_options(role, confined)).key
            for role in ROLES
            for confined in (True, False)
        }
        wrong = []
        async with _client(cp) as client:
            for (method, route), (pattern, ok, build) in MATRIX.items():
                for (role, confined), key in keys.items():
                    expected = _expected(pattern, ok, role, confined)
                    got = []
                    for agent, tenant in TARGETS:
                        request = build(world, agent, tenant)
                        response = await client.request(
                            request.method,
                            request.path,
                            json=request.json,
                            params=request.params,
                            headers={"Authorization": f"Bearer {key}"},
                        )
                        got.append(response.status_code)
                    if tuple(got) != expected:
                        scope = "acme" if confined else "global"
                        wrong.append(f"{method} {route} as {role}@{scope}: {got} != {expected}")
    assert wrong == []


async def test_the_mcp_proxy_admits_only_keys_that_may_act_in_its_session(
    async_control_plane: AsyncControlPlane,
) -> None:
    """The verifier the MCP HTTP proxy hands to the MCP SDK: no scope is a 403 there, no
    token a 401 (tests/test_mcp_proxy.py runs a real proxy with such keys)."""
    acp = async_control_plane
    keys = {
        (role, confined): (
            await acp.create_api_key(_role(role), **_key_options(role, confined))
        ).key
        for role in ROLES
        for confined in (True, False)
    }
    wrong = []
    for (role, confined), key in keys.items():
        got = []
        for agent, tenant in TARGETS:
            verifier = ApiKeyVerifier(acp, tenant, agent)
            token = await verifier.verify_token(key)
            assert token is not None
            got.append(200 if token.scopes == [TOOLS_SCOPE] else 403)
        expected = _expected(MCP, 200, role, confined)
        if tuple(got) != expected:
            wrong.append(f"{role}@{'acme' if confined else 'global'}: {got} != {expected}")
    assert wrong == []
    assert await ApiKeyVerifier(acp, None, "bot-1").verify_token(f"{key}x") is None
    expired = await acp.create_api_key("admin", expires_in=timedelta(hours=1))
    acp._runtime = replace(
        acp._runtime, clock=lambda: expired.api_key.created_at + timedelta(hours=2)
    )
    assert await ApiKeyVerifier(acp, None, "bot-1").verify_token(expired.key) is None
