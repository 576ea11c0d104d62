"""The REST gateway against real databases: the governed flow, roles, tenants, errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent_control_plane import ControlPlane
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY, Api, Gateway, assert_problem, gateway_on


@pytest.fixture
def gateway(database: TestDatabase) -> Iterator[Gateway]:
    with gateway_on(database.url_string) as opened:
        yield opened


@pytest.fixture
def sqlite_gateway(tmp_path: Path) -> Iterator[Gateway]:
    with gateway_on(f"sqlite:///{tmp_path / 'gateway.db'}") as opened:
        yield opened


def _policy_id(admin: Api) -> str:
    response = admin.post("/v1/policies", POLICY)
    assert response.status_code == 201, response.text
    policy_id: str = response.json()["id"]
    return policy_id


def _session_body(policy: Any, **fields: Any) -> dict[str, Any]:
    return {"agent_id": "bot", "policy": policy, "max_cost": "5.00", "max_actions": 20, **fields}


def _open(api: Api, policy: Any, **fields: Any) -> dict[str, Any]:
    body = _session_body(policy, **fields)
    response = api.post("/v1/sessions", body)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


def test_open_govern_approve_govern_outcome(gateway: Gateway) -> None:
    admin = gateway.as_role("admin")
    agent = gateway.as_role("agent", agents=["bot"])
    approver = gateway.as_role("approver", name="alice")
    session = _open(agent, _policy_id(admin), name="ticket-1")
    sid = session["id"]
    assert (session["status"], Decimal(session["max_cost"]), session["killed"]) == (
        "created",
        Decimal(5),
        False,
    )

    read = agent.post(f"/v1/sessions/{sid}/govern", {"action": "read", "cost": "0.25"})
    assert (read.status_code, read.json()["outcome"], read.json()["allowed"]) == (
        200,
        "allowed",
        True,
    )
    assert Decimal(read.json()["remaining_cost"]) == Decimal("4.75")

    nul = agent.post(f"/v1/sessions/{sid}/govern", {"action": "read", "args": {"k": "a\x00"}})
    assert assert_problem(nul, 422, "invalid_input")["field"] == "args"
    asked = agent.post(f"/v1/sessions/{sid}/govern", {"action": "refund", "args": {"n": 5}})
    assert asked.json()["outcome"] == "needs_approval"
    ticket = asked.json()["ticket_id"]
    assert agent.get(f"/v1/approvals/{ticket}/wait", params={"timeout": 0}).json()["pending"]

    assert_problem(agent.post(f"/v1/approvals/{ticket}/approve", {}), 403, "forbidden")
    forged = approver.post(f"/v1/approvals/{ticket}/approve", {"by": "mallory"})
    assert_problem(forged, 422, "request_invalid")
    approved = approver.post(f"/v1/approvals/{ticket}/approve", {"reason": "ok"})
    assert approved.status_code == 200, approved.text
    key_id = approver.key.split("_")[1] if approver.key else ""
    assert approved.json()["decided_by"] == f"alice (key:{key_id})"
    waited = agent.get(f"/v1/approvals/{ticket}/wait", params={"timeout": 1})
    assert waited.json()["status"] == "approved"

    decision = agent.post(f"/v1/sessions/{sid}/govern", {"action": "refund", "args": {"n": 5}})
    assert decision.json()["outcome"] == "allowed", decision.text
    outcome = agent.post(
        "/v1/outcomes",
        {"decision": decision.json(), "status": "succeeded", "actual_cost": "0", "result": {}},
    )
    assert outcome.status_code == 201, outcome.text
    assert outcome.json()["kind"] == "outcome"
    tampered = {**read.json(), "cost": "0.5"}
    assert_problem(
        agent.post("/v1/outcomes", {"decision": tampered, "status": "failed"}),
        422,
        "invalid_input",
    )

    assert agent.post(f"/v1/sessions/{sid}/heartbeat").json()["killed"] is False
    emitted = agent.post(f"/v1/sessions/{sid}/events", {"kind": "app.note", "payload": {"a": 1}})
    assert emitted.status_code == 201, emitted.text
    kinds = [event["kind"] for event in agent.get(f"/v1/sessions/{sid}/events").json()]
    assert kinds[0] == "session.opened"
    assert kinds.count("decision") == 3
    assert kinds[-2:] == ["outcome", "app.note"]
    assert admin.get("/v1/audit/verify").json()["ok"] is True
    completed = agent.post(f"/v1/sessions/{sid}/complete", {"reason": "done"})
    assert completed.json()["status"] == "completed"
    after = agent.post(f"/v1/sessions/{sid}/govern", {"action": "read"}).json()
    assert (after["outcome"], after["reason"]) == ("denied", "session.completed")
    assert_problem(admin.post(f"/v1/sessions/{sid}/resume", {}), 409, "invalid_transition")


def test_roles_and_keys(sqlite_gateway: Gateway) -> None:
    gateway = sqlite_gateway
    admin = gateway.as_role("admin")
    agent = gateway.as_role("agent", agents=["bot"])
    viewer = gateway.as_role("viewer")
    approver = gateway.as_role("approver")
    policy = _policy_id(admin)
    sid = _open(admin, POLICY)["id"]

    missing = gateway.anonymous().get("/v1/sessions")
    assert_problem(missing, 401, "auth.missing")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(Api(gateway.client, "acp_nope").get("/v1/sessions"), 401, "auth.malformed")
    unknown = f"acp_{'0' * 16}_{'a' * 43}"
    assert_problem(Api(gateway.client, unknown).get("/v1/sessions"), 401, "auth.unknown")
    revoked = gateway.as_role("admin")
    assert revoked.key is not None
    gateway.control_plane.revoke_api_key(revoked.key.split("_")[1])
    assert_problem(revoked.get("/v1/sessions"), 401, "auth.revoked")
    by_header = gateway.client.get("/v1/sessions", headers={"X-API-Key": viewer.key or ""})
    assert by_header.status_code == 200

    assert_problem(viewer.post(f"/v1/sessions/{sid}/govern", {"action": "read"}), 403, "forbidden")
    assert_problem(viewer.post("/v1/sessions", {"agent_id": "x"}), 403, "forbidden")
    assert_problem(agent.get("/v1/sessions"), 403, "forbidden")
    assert_problem(agent.post("/v1/kill", {"scope": "all"}), 403, "forbidden")
    assert_problem(approver.post("/v1/kill", {"scope": "all"}), 403, "forbidden")
    assert_problem(approver.post(f"/v1/sessions/{sid}/pause", {}), 403, "forbidden")
    # An agent names a stored policy; it cannot bring its own.
    inline = {"agent_id": "bot", "policy": POLICY, "max_cost": 1, "max_actions": 1}
    assert_problem(agent.post("/v1/sessions", inline), 403, "forbidden")
    assert agent.get(f"/v1/sessions/{sid}").status_code == 200
    assert viewer.get("/v1/sessions").json()["items"][0]["id"] == sid
    assert approver.get("/v1/approvals").status_code == 200
    own = _open(agent, policy)
    assert agent.post(f"/v1/sessions/{own['id']}/govern", {"action": "read"}).status_code == 200
    # An agent asks only within the policy's limits, and only under a policy that has them.
    greedy = agent.post("/v1/sessions", _session_body(policy, max_cost="10.01"))
    assert_problem(greedy, 422, "invalid_input")
    assert greedy.json()["field"] == "max_cost"
    uncapped = {key: value for key, value in POLICY.items() if key != "limits"}
    uncapped_id = admin.post("/v1/policies", {**uncapped, "name": "uncapped"}).json()["id"]
    assert_problem(agent.post("/v1/sessions", _session_body(uncapped_id)), 403, "forbidden")
    assert admin.post("/v1/sessions", _session_body(uncapped_id, max_cost="99")).status_code == 201

    paused = admin.post(f"/v1/sessions/{sid}/pause", {"reason": "look"})
    assert paused.json()["status"] == "paused"
    killed = admin.post("/v1/kill", {"scope": "all", "reason": "incident"})
    assert killed.json() == {"scope": "all", "target": None, "stopped": 3}
    assert admin.get(f"/v1/sessions/{sid}").json()["killed"] is True
    assert_problem(
        admin.post("/v1/kill", {"scope": "session"}), 422, "invalid_input"
    )  # a session kill needs its target


def test_tenant_keys_are_confined_to_their_tenant(gateway: Gateway) -> None:
    root = gateway.as_role("admin")
    acme_admin = gateway.as_role("admin", tenant="acme")
    acme_agent = gateway.as_role("agent", tenant="acme", agents=["bot"])
    acme_viewer = gateway.as_role("viewer", tenant="acme")
    policy = _policy_id(root)
    ours = _open(acme_agent, policy)
    assert ours["tenant"] == "acme"
    theirs = _open(root, policy, tenant="globex", agent_id="bot")
    assert_problem(
        acme_agent.post(
            "/v1/sessions",
            {"agent_id": "bot", "policy": policy, "max_cost": 1, "max_actions": 1, "tenant": "x"},
        ),
        403,
        "forbidden",
    )

    listed = acme_viewer.get("/v1/sessions").json()["items"]
    assert [s["id"] for s in listed] == [ours["id"]]
    assert len(root.get("/v1/sessions").json()["items"]) == 2
    assert_problem(acme_viewer.get("/v1/sessions", params={"tenant": "globex"}), 403, "forbidden")
    assert_problem(acme_viewer.get(f"/v1/sessions/{theirs['id']}"), 404, "session_not_found")
    assert_problem(
        acme_agent.post(f"/v1/sessions/{theirs['id']}/govern", {"action": "refund"}),
        404,
        "session_not_found",
    )

    their_ticket = root.post(f"/v1/sessions/{theirs['id']}/govern", {"action": "refund"})
    our_ticket = acme_agent.post(f"/v1/sessions/{ours['id']}/govern", {"action": "refund"})
    queue = acme_viewer.get("/v1/approvals").json()["items"]
    assert [t["id"] for t in queue] == [our_ticket.json()["ticket_id"]]
    assert_problem(
        acme_admin.post(f"/v1/approvals/{their_ticket.json()['ticket_id']}/deny", {"reason": "x"}),
        404,
        "ticket_not_found",
    )
    feed = acme_viewer.get("/v1/events").json()["items"]
    assert {e["session_id"] for e in feed} == {ours["id"]}
    assert_problem(acme_viewer.get("/v1/audit/verify"), 403, "forbidden")
    assert acme_viewer.get("/v1/audit/verify", params={"session_id": ours["id"]}).json()["ok"]

    assert_problem(
        acme_admin.post("/v1/kill", {"scope": "tenant", "target": "globex"}), 403, "forbidden"
    )
    assert acme_admin.post("/v1/kill", {"scope": "agent", "target": "bot"}).json()["stopped"] == 1
    assert acme_admin.post("/v1/kill", {"scope": "all"}).json()["stopped"] == 0
    assert root.get(f"/v1/sessions/{theirs['id']}").json()["status"] == "created"
    assert root.get(f"/v1/sessions/{ours['id']}").json()["killed"] is True

    # A tenant's "all" is its tenant: acme opens nothing until it lifts, globex is unaffected.
    assert_problem(acme_agent.post("/v1/sessions", _session_body(policy)), 409, "killed")
    _open(root, policy, tenant="globex")
    kills = acme_viewer.get("/v1/kills").json()
    assert {(k["scope"], k["tenant"], k["agent_id"]) for k in kills} == {
        ("agent", "acme", "bot"),
        ("tenant", "acme", None),
    }
    assert {k["killed_by"] for k in kills} == {f"key:{(acme_admin.key or '').split('_')[1]}"}
    assert_problem(
        acme_admin.post("/v1/kill/lift", {"scope": "tenant", "target": "globex"}), 403, "forbidden"
    )
    assert acme_admin.post("/v1/kill/lift", {"scope": "all"}).json()["lifted"] is True
    assert_problem(acme_agent.post("/v1/sessions", _session_body(policy)), 409, "killed")
    assert acme_admin.post("/v1/kill/lift", {"scope": "agent", "target": "bot"}).json() == {
        "scope": "agent",
        "target": "bot",
        "lifted": True,
    }
    assert acme_agent.post("/v1/sessions", _session_body(policy)).status_code == 201
    assert acme_viewer.get("/v1/kills").json() == []
    assert len(acme_viewer.get("/v1/kills", params={"include_lifted": True}).json()) == 2
    # A global key names the tenant an agent's kill was confined to.
    gateway.control_plane.kill_agent("intruder", tenant="globex")
    assert acme_viewer.get("/v1/kills").json() == []
    assert_problem(
        acme_admin.post(
            "/v1/kill/lift", {"scope": "agent", "target": "intruder", "tenant": "globex"}
        ),
        403,
        "forbidden",
    )
    assert_problem(
        root.post("/v1/kill/lift", {"scope": "tenant", "target": "globex", "tenant": "globex"}),
        422,
        "invalid_input",
    )
    lifted = root.post(
        "/v1/kill/lift", {"scope": "agent", "target": "intruder", "tenant": "globex"}
    )
    assert lifted.json()["lifted"] is True


def test_token_budgets_and_reservations(sqlite_gateway: Gateway) -> None:
    gateway = sqlite_gateway
    gateway.control_plane.set_prices({"small": {"input": "1", "output": "2"}})
    admin = gateway.as_role("admin")
    agent = gateway.as_role("agent", tenant="acme", agents=["bot"])
    budget = admin.post(
        "/v1/budgets",
        {"identity": {"org": "acme"}, "period": "day", "max_tokens": 1000, "soft_limit_ratio": 0.2},
    )
    assert budget.status_code == 201, budget.text
    assert (
        admin.post(
            "/v1/budgets", {"identity": {"org": "globex"}, "period": "day", "max_tokens": 5}
        ).status_code
        == 201
    )
    assert_problem(
        admin.post("/v1/budgets", {"identity": {"org": "acme"}, "period": "day", "max_tokens": 1}),
        409,
        "token_budget_exists",
    )

    held = agent.post(
        "/v1/tokens/reservations",
        {
            "identity": {"user": "u1"},
            "model": "small",
            "input_tokens": 100,
            "max_output_tokens": 200,
        },
    )
    assert held.status_code == 201, held.text
    assert held.json()["reserved_tokens"] == 300
    assert held.json()["warnings"] != []  # past the soft limit of 200 tokens
    too_much = agent.post(
        "/v1/tokens/reservations",
        {"identity": {}, "model": "small", "input_tokens": 900, "max_output_tokens": 100},
    )
    problem = assert_problem(too_much, 409, "token_budget_exhausted")
    assert problem["budget_id"] == budget.json()["id"]
    assert_problem(
        agent.post(
            "/v1/tokens/reservations",
            {
                "identity": {"org": "globex"},
                "model": "small",
                "input_tokens": 1,
                "max_output_tokens": 1,
            },
        ),
        403,
        "forbidden",
    )
    settled = agent.post(
        f"/v1/tokens/reservations/{held.json()['id']}/settle",
        {"input_tokens": 100, "output_tokens": 50},
    )
    assert settled.json()["total_tokens"] == 150, settled.text
    status = admin.get("/v1/budgets/status").json()
    acme = next(row for row in status if row["budget"]["org_id"] == "acme")
    assert acme["used"]["tokens"] == 150
    usage = admin.get("/v1/tokens/usage", params={"group_by": ["org", "model"]}).json()
    assert usage[0]["org"] == "acme"
    assert usage[0]["total_tokens"] == 150

    acme_admin = gateway.as_role("admin", tenant="acme")
    assert [b["org_id"] for b in acme_admin.get("/v1/budgets").json()] == ["acme"]
    globex_id = next(b["id"] for b in admin.get("/v1/budgets").json() if b["org_id"] == "globex")
    assert_problem(acme_admin.delete(f"/v1/budgets/{globex_id}"), 404, "not_found")
    assert admin.delete(f"/v1/budgets/{globex_id}").status_code == 204
    assert_problem(admin.delete(f"/v1/budgets/{globex_id}"), 404, "not_found")


def test_the_event_stream_follows_the_feed(sqlite_gateway: Gateway) -> None:
    gateway = sqlite_gateway
    admin = gateway.as_role("admin")
    sid = _open(admin, POLICY)["id"]
    admin.post(f"/v1/sessions/{sid}/govern", {"action": "read"})
    first = admin.get("/v1/events", params={"limit": 1}).json()

    def stream(**params: Any) -> list[dict[str, str]]:
        headers = params.pop("headers", {})
        response = gateway.client.get(
            "/v1/events/stream",
            params={"poll_interval": 0.05, **params},
            headers={"Authorization": f"Bearer {admin.key}", **headers},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for block in response.text.split("\n\n"):
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if fields:
                events.append(fields)
        return events

    replay = stream(cursor="0", max_events=2)
    assert [(e["id"], e["event"]) for e in replay] == [
        (str(first["items"][0]["id"]), "session.opened"),
        (str(first["items"][0]["id"] + 1), "decision"),
    ]
    resumed = stream(max_events=1, headers={"Last-Event-ID": replay[0]["id"]})
    assert resumed[0]["id"] == replay[1]["id"]

    # Without a cursor the stream starts at the head: only what commits next arrives.
    timer = threading.Timer(0.3, lambda: gateway.control_plane.emit(sid, "app.later", {"n": 1}))
    timer.start()
    live = stream(max_events=1)
    timer.join()
    assert live[0]["event"] == "app.later"
    assert '"kind":"app.later"' in live[0]["data"]


def test_probes_and_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with gateway_on(url, migrate="off") as gateway:
        assert gateway.client.get("/healthz").json() == {"status": "ok", "revision": None}
        assert_problem(gateway.client.get("/readyz"), 503, "schema_not_current")
        key = f"acp_{'0' * 16}_{'a' * 43}"
        problem = assert_problem(
            Api(gateway.client, key).get("/v1/sessions"), 503, "governance_unavailable"
        )
        assert "SELECT" not in problem["detail"]
        assert "acp_api_keys" not in problem["detail"]
    with gateway_on(url) as gateway:
        ready = gateway.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["revision"] == list(gateway.control_plane.migrator.heads())


def test_errors_are_problem_documents(sqlite_gateway: Gateway) -> None:
    admin = sqlite_gateway.as_role("admin")
    assert_problem(admin.get("/v1/nowhere"), 404, "route_not_found")
    assert_problem(admin.delete("/v1/sessions"), 405, "method_not_allowed")
    invalid = assert_problem(
        admin.post("/v1/sessions", {"agent_id": "", "max_cost": "-1"}), 422, "request_invalid"
    )
    assert {p["location"] for p in invalid["problems"]} >= {"body.agent_id", "body.policy"}
    assert_problem(admin.get(f"/v1/sessions/{uuid.uuid4()}"), 404, "session_not_found")
    assert_problem(admin.get("/v1/sessions/not-a-uuid"), 422, "request_invalid")
    bad_policy = admin.post("/v1/policies", {"name": "x", "default": "maybe"})
    assert "problems" in assert_problem(bad_policy, 422, "invalid_policy")
    sid = _open(admin, POLICY)["id"]
    keyed = {"action": "read", "idempotency_key": "k1"}
    assert admin.post(f"/v1/sessions/{sid}/govern", keyed).status_code == 200
    assert_problem(
        admin.post(f"/v1/sessions/{sid}/govern", {**keyed, "cost": "1"}),
        409,
        "idempotency_conflict",
    )
    assert_problem(admin.get("/v1/sessions", params={"cursor": "garbage"}), 422, "invalid_input")

    spec = sqlite_gateway.client.get("/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    govern = spec["paths"]["/v1/sessions/{session_id}/govern"]["post"]
    assert set(govern["responses"]) >= {"200", "401", "403", "404", "409", "422", "503"}
    assert list(govern["responses"]["422"]["content"]) == ["application/problem+json"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_create_app_needs_a_sync_control_plane() -> None:
    from agent_control_plane.gateway import create_app

    with pytest.raises(TypeError, match="ControlPlane"):
        create_app(object())  # type: ignore[arg-type]


def test_the_control_plane_is_what_the_gateway_changes(sqlite_gateway: Gateway) -> None:
    admin = sqlite_gateway.as_role("admin")
    sid = _open(admin, POLICY)["id"]
    admin.post("/v1/kill", {"scope": "session", "target": sid})
    session = sqlite_gateway.control_plane.get_session(sid)
    assert isinstance(sqlite_gateway.control_plane, ControlPlane)
    assert session.killed
