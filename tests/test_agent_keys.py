"""Agent keys act only as their agents; keys may expire; on every database."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.cli import app
from agent_control_plane.cli.common import console
from agent_control_plane.errors import AuthenticationError, InvalidInputError
from agent_control_plane.rules import keys
from agent_control_plane.rules.tokens import Identity
from agent_control_plane.schema.tables import build_tables
from tests.acp_helpers import engine_for, migrator_for
from tests.dashboard_helpers import Browserless, served
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY, Api, Gateway, assert_problem, gateway_on

runner = CliRunner()
PRICES = {"small": {"input": "1", "output": "2"}}


@pytest.fixture
def gateway(database: TestDatabase) -> Iterator[Gateway]:
    with gateway_on(database.url_string) as opened:
        opened.control_plane.set_prices(PRICES)
        yield opened


def _session_body(policy: str, agent_id: str) -> dict[str, Any]:
    return {"agent_id": agent_id, "policy": policy, "max_cost": "1", "max_actions": 10}


def _event_count(cp: ControlPlane) -> int:
    with cp.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(cp.tables.events)).one()[0])


def test_an_agent_key_acts_only_as_its_agents(gateway: Gateway) -> None:
    """The reported attack: a key used by bot-1 opened a session as bot-1-again right after
    bot-1 was killed and kept acting, and could write into any session of its tenant."""
    cp = gateway.control_plane
    admin = gateway.as_role("admin")
    bot1 = gateway.as_role("agent", agents=["bot-1"])
    policy = admin.post("/v1/policies", POLICY).json()["id"]
    own = bot1.post("/v1/sessions", _session_body(policy, "bot-1"))
    assert own.status_code == 201, own.text
    assert (
        bot1.post(f"/v1/sessions/{own.json()['id']}/govern", {"action": "read"}).status_code == 200
    )

    cp.kill_agent("bot-1", reason="incident")
    assert_problem(bot1.post("/v1/sessions", _session_body(policy, "bot-1")), 409, "killed")
    again = bot1.post("/v1/sessions", _session_body(policy, "bot-1-again"))
    assert_problem(again, 403, "forbidden")
    assert "'bot-1'" in again.json()["detail"]
    assert "bot-1-again" in again.json()["detail"]
    assert cp.list_sessions(agent_id="bot-1-again").items == []

    # Another agent's session of the same tenant: nothing goes in, nothing comes out.
    sid = cp.open_session(agent_id="bot-2", policy=POLICY, max_cost=5, max_actions=50).id
    decision = cp.govern(sid, "read")
    ticket = cp.govern(sid, "refund", args={"n": 1}).ticket_id
    reservation = cp.reserve_tokens(
        Identity(agent="bot-2"), "small", input_tokens=1, max_output_tokens=1
    )
    before = (_event_count(cp), cp.get_session(sid))
    usage = {"input_tokens": 1, "output_tokens": 1}
    tokens = {"model": "small", "input_tokens": 1, "max_output_tokens": 1}
    refused = [
        bot1.post(f"/v1/sessions/{sid}/govern", {"action": "read"}),
        bot1.post(f"/v1/sessions/{sid}/events", {"kind": "app.note"}),
        bot1.post(f"/v1/sessions/{sid}/heartbeat"),
        bot1.post(f"/v1/sessions/{sid}/complete", {}),
        bot1.post("/v1/outcomes", {"decision": decision.to_json_data(), "status": "succeeded"}),
        bot1.get(f"/v1/sessions/{sid}"),
        bot1.get(f"/v1/sessions/{sid}/events"),
        bot1.get(f"/v1/approvals/{ticket}"),
        bot1.get(f"/v1/approvals/{ticket}/wait", params={"timeout": 0}),
        bot1.post("/v1/tokens/reservations", {"identity": {}, "session_id": str(sid), **tokens}),
        bot1.post("/v1/tokens/reservations", {"identity": {"agent": "bot-2"}, **tokens}),
        bot1.post(
            "/v1/tokens/usage",
            {"identity": {"agent": "bot-2"}, "model": "small", "usage": usage},
        ),
        bot1.post(f"/v1/tokens/reservations/{reservation.id}/settle", usage),
        bot1.post(f"/v1/tokens/reservations/{reservation.id}/release"),
    ]
    for response in refused:
        assert_problem(response, 403, "forbidden")
    assert (_event_count(cp), cp.get_session(sid)) == before
    assert cp.get_reservation(reservation.id).status == "held"

    # Its own tokens: identity.agent is its agent by default, and may be named.
    mine = bot1.post("/v1/tokens/reservations", {"identity": {}, **tokens})
    assert mine.status_code == 201, mine.text
    assert cp.get_reservation(mine.json()["id"]).agent_id == "bot-1"
    settled = bot1.post(f"/v1/tokens/reservations/{mine.json()['id']}/settle", usage)
    assert settled.status_code == 200, settled.text


def test_patterns_are_explicit(gateway: Gateway) -> None:
    """``bot-1`` is bot-1 only; ``bot-1*`` covers bot-1-again; a key with several
    patterns acts as any of them, and ``*`` as every agent."""
    admin = gateway.as_role("admin")
    policy = admin.post("/v1/policies", POLICY).json()["id"]
    family = gateway.as_role("agent", agents=["bot-1*", "helper"])
    anyone = gateway.as_role("agent", agents=["*"])
    gateway.control_plane.kill_agent("whoever")
    for api, agent_id, status in (
        (anyone, "whoever", 409),  # a kill stands for a key of any agent too
        (family, "bot-1", 201),
        (family, "bot-1-again", 201),
        (family, "helper", 201),
        (family, "helper-2", 403),
        (family, "bot-2", 403),
        (anyone, "bot-2", 201),
        (anyone, "whoever-else", 201),
    ):
        opened = api.post("/v1/sessions", _session_body(policy, agent_id))
        assert opened.status_code == status, (agent_id, opened.text)
    # A key that names several agents names the one it spends tokens as.
    tokens = {"model": "small", "input_tokens": 1, "max_output_tokens": 1}
    unnamed = family.post("/v1/tokens/reservations", {"identity": {}, **tokens})
    assert "identity.agent" in assert_problem(unnamed, 403, "forbidden")["detail"]
    named = family.post("/v1/tokens/reservations", {"identity": {"agent": "helper"}, **tokens})
    assert named.status_code == 201, named.text


def test_delegation_gives_a_key_no_new_agents(gateway: Gateway) -> None:
    """A delegation hands a task to another agent; it does not let the delegating agent's
    key open sessions or act for the agent it delegated to."""
    cp = gateway.control_plane
    admin = gateway.as_role("admin")
    policy = admin.post("/v1/policies", POLICY).json()["id"]
    lead = gateway.as_role("agent", agents=["lead"])
    sid = lead.post("/v1/sessions", _session_body(policy, "lead")).json()["id"]
    cp.register_agent("lead", capabilities=["search"])
    cp.register_agent("worker", capabilities=["search"])
    delegation = cp.delegate("lead", "worker", "find it", capability="search", session_id=sid)
    assert delegation.status == "active"
    assert_problem(lead.post("/v1/sessions", _session_body(policy, "worker")), 403, "forbidden")
    theirs = cp.open_session(agent_id="worker", policy=POLICY, max_cost=1, max_actions=5).id
    assert_problem(lead.post(f"/v1/sessions/{theirs}/govern", {"action": "read"}), 403, "forbidden")


def test_an_agent_key_names_its_agents_when_it_is_created(control_plane: ControlPlane) -> None:
    cp = control_plane
    for agents, message in (
        (None, re.escape("agents=['*']")),
        ([], "at least one"),
        ("bot-1", "list"),
        ([""], "non-empty"),
        (["bot\n1"], "control"),
        (["x" * 201], "limit"),
        ([f"bot-{n}" for n in range(101)], "limit is 100"),
    ):
        with pytest.raises(InvalidInputError, match=message) as refused:
            cp.create_api_key("agent", agents=agents)
        assert refused.value.field == "agents"
    with pytest.raises(InvalidInputError, match="only an agent key"):
        cp.create_api_key("admin", agents=["*"])
    assert cp.list_api_keys() == []

    bound = cp.create_api_key("agent", agents=["bot-1", "bot-2*", "bot-1"], tenant="acme")
    assert bound.api_key.agents == ("bot-1", "bot-2*")
    anyone = cp.create_api_key("agent", agents=["*"])
    admin = cp.create_api_key("admin")
    listed = {key.key_id: key.agents for key in cp.list_api_keys()}
    assert listed == {bound.key_id: ("bot-1", "bot-2*"), anyone.key_id: ("*",), admin.key_id: None}
    assert cp.get_api_key(bound.key_id).agents == ("bot-1", "bot-2*")
    principal = cp.authenticate_api_key(bound.key)
    assert principal.agents == ("bot-1", "bot-2*")
    assert (
        principal.acts_as("bot-1"),
        principal.acts_as("bot-2-x"),
        principal.acts_as("bot-3"),
    ) == (
        True,
        True,
        False,
    )
    assert cp.authenticate_api_key(admin.key).acts_as("anyone")


async def test_the_async_control_plane_binds_agent_keys(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    with pytest.raises(InvalidInputError, match="agents"):
        await acp.create_api_key("agent")
    issued = await acp.create_api_key("agent", agents=["bot-1"], expires_in=timedelta(hours=1))
    principal = await acp.authenticate_api_key(issued.key)
    assert (principal.agents, principal.acts_as("bot-1-again")) == (("bot-1",), False)
    [listed] = await acp.list_api_keys()
    assert listed.agents == ("bot-1",)
    assert listed.expires_at == issued.api_key.expires_at


def test_an_agent_key_made_before_agents_acts_as_none(database: TestDatabase) -> None:
    """Agent keys created before keys named their agents survive the upgrade and still
    authenticate, but act as no agent until replaced: fail closed, with a message."""
    migrator = migrator_for(database)
    tables = build_tables(migrator.layout)
    key_id, secret = keys.new_key_id(), keys.new_secret()
    with engine_for(database) as engine:
        with engine.connect() as connection:
            migrator.upgrade(connection, "acp_0007")
        with engine.begin() as connection:
            # The row as create_api_key wrote it then: no agents, no expiry.
            connection.execute(
                insert(tables.api_keys).values(
                    id=uuid.uuid4(),
                    key_id=key_id,
                    secret_hash=keys.hash_secret(secret),
                    role="agent",
                    created_at=datetime.now(UTC),
                )
            )
    with gateway_on(database.url_string) as gateway:
        old_key = keys.format_key(key_id, secret)
        principal = gateway.control_plane.authenticate_api_key(old_key)
        assert (principal.role, principal.agents, principal.acts_as("bot")) == (
            "agent",
            None,
            False,
        )
        admin = gateway.as_role("admin")
        policy = admin.post("/v1/policies", POLICY).json()["id"]
        refused = Api(gateway.client, old_key).post("/v1/sessions", _session_body(policy, "bot"))
        assert "no agent" in assert_problem(refused, 403, "forbidden")["detail"]
    listed = runner.invoke(app, ["keys", "list", "--json", "--url", database.url_string])
    rows = {row["key_id"]: row for row in json.loads(listed.output)}
    assert (rows[key_id]["role"], rows[key_id]["agents"]) == ("agent", None)


def test_an_expired_key_is_refused_as_expired(gateway: Gateway) -> None:
    cp = gateway.control_plane
    now = datetime.now(UTC)
    soon = cp.create_api_key("viewer", expires_in=timedelta(hours=1))
    later = cp.create_api_key("admin", expires_at=now + timedelta(days=2))
    forever = cp.create_api_key("viewer")
    assert soon.api_key.expires_at is not None
    assert soon.api_key.expires_at - now >= timedelta(minutes=59)
    assert cp.get_api_key(later.key_id).expires_at == later.api_key.expires_at
    assert forever.api_key.expires_at is None
    for api in (Api(gateway.client, soon.key), Api(gateway.client, later.key)):
        assert api.get("/v1/sessions").status_code == 200

    cp._runtime = replace(cp._runtime, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    with pytest.raises(AuthenticationError) as caught:
        cp.authenticate_api_key(soon.key)
    assert caught.value.reason == "expired"
    assert_problem(Api(gateway.client, soon.key).get("/v1/sessions"), 401, "auth.expired")
    assert Api(gateway.client, later.key).get("/v1/sessions").status_code == 200
    assert Api(gateway.client, forever.key).get("/v1/sessions").status_code == 200
    with pytest.raises(AuthenticationError) as caught:
        cp.api_key_principal(soon.key_id)
    assert caught.value.reason == "expired"
    assert cp.api_key_principal(later.key_id).role == "admin"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"expires_in": timedelta(0)}, "expires_in"),
        ({"expires_in": 3600}, "expires_in"),
        ({"expires_in": timedelta.max}, "expires_in"),
        ({"expires_at": datetime(2999, 1, 1)}, "expires_at"),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "expires_at"),
        (
            {"expires_at": datetime(2999, 1, 1, tzinfo=UTC), "expires_in": timedelta(hours=1)},
            "expires_at",
        ),
    ],
)
def test_a_bad_expiry_is_refused_before_writing(
    control_plane: ControlPlane, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        control_plane.create_api_key("viewer", **options)
    assert refused.value.field == field
    assert control_plane.list_api_keys() == []


def test_acp_keys_names_agents_and_expiry(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string):
        pass  # migrate: the CLI only verifies
    refused = runner.invoke(app, ["keys", "create", "--role", "agent", *url])
    assert refused.exit_code == 2, refused.output
    assert "--agent" in refused.output or "agents=" in refused.output
    agents = ["--agent", "bot-1", "--agent", "bot-2*"]
    created = runner.invoke(
        app, ["keys", "create", "--role", "agent", *agents, "--expires-in", "90d", *url]
    )
    assert created.exit_code == 0, created.output
    assert "agents bot-1, bot-2*" in created.output
    assert "expires 20" in created.output
    as_json = runner.invoke(
        app, ["keys", "create", "--role", "agent", "--agent", "*", "--json", *url]
    )
    assert json.loads(as_json.output)["agents"] == ["*"]
    bad = runner.invoke(app, ["keys", "create", "--role", "viewer", "--expires-in", "soon", *url])
    assert bad.exit_code == 2
    assert "--expires-in" in bad.output

    rows = json.loads(runner.invoke(app, ["keys", "list", "--json", *url]).output)
    assert [(row["agents"], row["expires_at"] is not None) for row in rows] == [
        (["bot-1", "bot-2*"], True),
        (["*"], False),
    ]
    monkeypatch.setattr(console, "width", 250)
    table = runner.invoke(app, ["keys", "list", *url]).output
    assert "bot-1, bot-2*" in table
    assert "expires" in table


def test_an_expired_key_is_signed_out_of_the_dashboard(control_plane: ControlPlane) -> None:
    issued = control_plane.create_api_key("approver", expires_in=timedelta(hours=1))
    with served(control_plane) as base_url:
        client = Browserless(base_url)
        try:
            client.signed_in(issued.key)
            assert client.http.get("/ui/sessions").status_code == 200
            control_plane._runtime = replace(
                control_plane._runtime, clock=lambda: datetime.now(UTC) + timedelta(hours=2)
            )
            assert client.http.get("/ui/sessions").status_code == 303
            assert client.login(issued.key).status_code == 401
        finally:
            client.close()
