"""Hostile input never escapes as an internal error: over HTTP a 4xx problem document, in
Python an InvalidInputError (or another documented error), and nothing written.

Each case was seen to fail before: a lone surrogate gave 500 on all three databases, an
overflowing date or a forged cursor gave 503 "database unavailable", a huge rolling
period gave 500, ``"cost": true`` charged $1, MariaDB refused JSON nested 31 deep with
503, and a dict where a Decision or TokenUsage belongs raised AttributeError.
"""

from __future__ import annotations

import base64
import inspect
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ControlPlaneError,
    GovernanceUnavailableError,
    InvalidInputError,
)
from agent_control_plane.rules import validation
from agent_control_plane.rules.canonical import MAX_DOCUMENT_DEPTH, json_document
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY, Api, Gateway, assert_problem, gateway_on
from tests.method_calls import CALLS, Prep, cleanup, raised_by, snapshot
from tests.policies import SUPPORT_BOT


def nested(depth: int) -> dict[str, Any]:
    """A document whose objects nest exactly ``depth`` deep (``{"a": 1}`` is 1)."""
    document: Any = 1
    for _ in range(depth):
        document = {"a": document}
    assert isinstance(document, dict)
    return document


# --- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def gateway(database: TestDatabase) -> Iterator[Gateway]:
    with gateway_on(database.url_string) as opened:
        yield opened


def _send(api: Api, method: str, path: str, body: str) -> Any:
    """Send ``body`` as it is: json.dumps writes a lone surrogate as \\ud800, which any
    JSON parser reads back as one."""
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    return api.client.request(method, path, content=body.encode(), headers=headers)


@pytest.fixture
def admin(gateway: Gateway) -> Api:
    return gateway.as_role("admin")


@pytest.fixture
def policy_id(admin: Api) -> str:
    response = admin.post("/v1/policies", POLICY)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def session_id(admin: Api, policy_id: str) -> str:
    response = admin.post("/v1/sessions", _session(policy_id))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _session(policy_id: str, **fields: Any) -> dict[str, Any]:
    return {"agent_id": "bot", "policy": policy_id, "max_cost": "5", "max_actions": 20, **fields}


def _hostile_requests(policy_id: str, sid: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, body): each must be refused with a 4xx before any SQL."""
    session = _session(policy_id)
    govern = f"/v1/sessions/{sid}/govern"
    overflowing = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
    return [
        ("surrogate in metadata", "POST", "/v1/sessions", {**session, "metadata": {"k": "\ud800"}}),
        ("surrogate metadata key", "POST", "/v1/sessions", {**session, "metadata": {"\udfff": 1}}),
        ("surrogate in agent_id", "POST", "/v1/sessions", {**session, "agent_id": "a\ud800"}),
        ("surrogate in args", "POST", govern, {"action": "read", "args": {"q": "x\udc00y"}}),
        ("surrogate in action", "POST", govern, {"action": "re\ud83dad"}),
        (
            "surrogate in payload",
            "POST",
            f"/v1/sessions/{sid}/events",
            {
                "kind": "app.note",
                "payload": {"n": ["\ud800"]},
            },
        ),
        ("surrogate in policy", "POST", "/v1/policies", {**POLICY, "name": "p\ud800"}),
        ("surrogate in reason", "POST", f"/v1/sessions/{sid}/pause", {"reason": "\udfff"}),
        ("expiry past year 9999", "POST", "/v1/sessions", {**session, "expires_at": overflowing}),
        (
            "expiry before year 1",
            "POST",
            "/v1/sessions",
            {
                **session,
                "expires_at": "0001-01-01T00:00:00+14:00",
            },
        ),
        ("true as cost", "POST", govern, {"action": "read", "cost": True}),
        ("false as cost", "POST", govern, {"action": "read", "cost": False}),
        ("true as max_cost", "POST", "/v1/sessions", {**session, "max_cost": True}),
        ("true as max_actions", "POST", "/v1/sessions", {**session, "max_actions": True}),
        ("true as weight", "POST", govern, {"action": "read", "weight": True}),
        (
            "true as tokens",
            "POST",
            "/v1/tokens/reservations",
            {
                "identity": {"org": "o"},
                "model": "m",
                "input_tokens": True,
                "max_output_tokens": 1,
            },
        ),
        ("true as max_tokens", "POST", "/v1/budgets", {"period": "day", "max_tokens": True}),
        (
            "true as soft limit",
            "POST",
            "/v1/budgets",
            {
                "period": "day",
                "max_tokens": 5,
                "soft_limit_ratio": True,
            },
        ),
        (
            "huge rolling period",
            "POST",
            "/v1/budgets",
            {
                "period": "rolling:99999999999d",
                "max_tokens": 5,
            },
        ),
        ("huge budget", "POST", "/v1/budgets", {"period": "day", "max_cost_usd": "1e30"}),
        (
            "huge approval timeout",
            "POST",
            "/v1/policies",
            {
                **POLICY,
                "approval_timeout": "99999999999999d",
            },
        ),
        (
            "huge sequence window",
            "POST",
            "/v1/policies",
            {
                **POLICY,
                "sequences": [{"limit": "read", "max": 3, "per": "99999999999999d"}],
            },
        ),
        (
            "args too deep",
            "POST",
            govern,
            {
                "action": "read",
                "args": nested(MAX_DOCUMENT_DEPTH + 1),
            },
        ),
        (
            "metadata too deep",
            "POST",
            "/v1/sessions",
            {
                **session,
                "metadata": nested(MAX_DOCUMENT_DEPTH + 1),
            },
        ),
        (
            "policy too deep",
            "POST",
            "/v1/policies",
            {
                **POLICY,
                "extra": nested(MAX_DOCUMENT_DEPTH + 1),
            },
        ),
    ]


def _forged_cursor(at: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, str(uuid.uuid4())]).encode()).decode()


FORGED_CURSORS = [
    "garbage",
    "AAAA",
    base64.urlsafe_b64encode(b'{"x": 1}').decode(),
    _forged_cursor("9999-12-31T23:59:59-14:00"),  # overflows in UTC
    _forged_cursor("2020-01-01T00:00:00"),  # naive: no database column takes it
    _forged_cursor("2020-01-01T00:00:00+05:00"),  # ACP's cursors are UTC
    "x" * 400,
]


def test_hostile_requests_get_4xx_problems_and_write_nothing(
    gateway: Gateway, admin: Api, policy_id: str, session_id: str
) -> None:
    before = snapshot(gateway.control_plane.engine, gateway.control_plane)
    refused = {}
    for name, method, path, body in _hostile_requests(policy_id, session_id):
        response = _send(admin, method, path, json.dumps(body))
        assert 400 <= response.status_code < 500, (name, response.text)
        assert response.status_code == 422, (name, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json", name
        assert problem["reason"] in ("invalid_input", "request_invalid", "invalid_policy"), name
        refused[name] = problem["detail"]
    assert snapshot(gateway.control_plane.engine, gateway.control_plane) == before
    # The cost stayed exact: true never became $1.
    session = admin.get(f"/v1/sessions/{session_id}").json()
    assert (Decimal(session["cost_used"]), session["actions_used"]) == (Decimal(0), 0)
    assert "surrogate" in refused["surrogate in args"]
    assert "out of range in UTC" in refused["expiry past year 9999"]
    assert f"more than {MAX_DOCUMENT_DEPTH} levels" in refused["args too deep"]


def test_forged_cursors_are_invalid_input_not_unavailable(gateway: Gateway, admin: Api) -> None:
    for path in ("/v1/sessions", "/v1/approvals", "/v1/events", "/v1/events/stream"):
        for cursor in FORGED_CURSORS:
            response = admin.get(path, params={"cursor": cursor})
            assert 400 <= response.status_code < 500, (path, cursor, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    since = admin.get("/v1/tokens/usage", params={"since": "9999-12-31T23:59:59-14:00"})
    assert_problem(since, 422, "invalid_input")


def test_one_nesting_limit_on_every_database(
    gateway: Gateway, admin: Api, policy_id: str, session_id: str
) -> None:
    """Every caller document may nest exactly MAX_DOCUMENT_DEPTH deep, wherever ACP stores
    it (MariaDB refused 31 before; it must take the limit and refuse one more alike)."""
    deepest, deeper = nested(MAX_DOCUMENT_DEPTH), nested(MAX_DOCUMENT_DEPTH + 1)
    session = admin.post("/v1/sessions", _session(policy_id, metadata=deepest))
    assert session.status_code == 201, session.text
    assert session.json()["metadata"] == deepest
    decision = admin.post(
        f"/v1/sessions/{session_id}/govern",
        {"action": "read", "args": deepest, "idempotency_key": "deep"},
    )
    assert decision.status_code == 200, decision.text
    outcome = admin.post(
        "/v1/outcomes", {"decision": decision.json(), "status": "succeeded", "result": deepest}
    )
    assert outcome.status_code == 201, outcome.text
    emitted = admin.post(
        f"/v1/sessions/{session_id}/events", {"kind": "app.deep", "payload": deepest}
    )
    assert emitted.status_code == 201, emitted.text
    for path, body in [
        (f"/v1/sessions/{session_id}/govern", {"action": "read", "args": deeper}),
        (f"/v1/sessions/{session_id}/events", {"kind": "app.deep", "payload": deeper}),
        ("/v1/outcomes", {"decision": decision.json(), "status": "failed", "result": deeper}),
    ]:
        assert_problem(admin.post(path, body), 422, "invalid_input")
    # A body nested past what the JSON parser takes is a 400, never a 5xx.
    too_deep_to_parse = '{"action": "read", "args": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    response = _send(admin, "POST", f"/v1/sessions/{session_id}/govern", too_deep_to_parse)
    assert response.status_code == 400, response.text


# --- in Python --------------------------------------------------------------------------------


def _deep_cycle() -> dict[str, Any]:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    return cycle


HOSTILE_VALUES: dict[str, Any] = {
    "dict": {"id": 1},
    "object": object(),
    "list": [1, 2],
    "true": True,
    "float": 1.5,
    "nan": float("nan"),
    "negative": -1,
    "huge int": 2**80,
    "lone surrogate": "a\ud800",
    "NUL": "x\x00",
    "empty": "",
    "bytes": b"x",
    "naive datetime": datetime(2020, 1, 1),
    "overflowing datetime": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
    "huge timedelta": timedelta(days=999_999_999),
    "1000 deep": nested(1000),
    "cycle": _deep_cycle(),
    "surrogate inside": {"k": "\udfff"},
}
# Waits that would be honoured as given (a wait of 2**80 s is a valid, if long, wait).
_LONG_WAITS = {"huge int", "float", "true", "huge timedelta"}


@pytest.fixture
def prepared(database: TestDatabase) -> Iterator[tuple[ControlPlane, Prep]]:
    with ControlPlane.open(database.url_string) as cp, ControlPlane.open(database.url_string) as p:
        prep = Prep(p)
        cp.set_prices({"m": {"input": "1", "output": "2"}})
        yield cp, prep


def test_every_argument_of_every_method_refuses_wrong_values(
    prepared: tuple[ControlPlane, Prep], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each argument of each public method, in turn, gets each hostile value; the call
    either works or raises a documented error that is not "database unavailable"."""
    monkeypatch.chdir(tmp_path)  # where a checkpoint given no sink is written
    cp, prep = prepared
    escaped: list[str] = []
    for name, make in CALLS.items():
        method = getattr(cp, name)
        parameters = [
            parameter
            for parameter in inspect.signature(method).parameters.values()
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        for index, parameter in enumerate(parameters):
            for label, value in HOSTILE_VALUES.items():
                if parameter.name == "timeout" and label in _LONG_WAITS:
                    continue
                args, kwargs = make(prep)
                positional = list(args)
                if index < len(positional) and parameter.kind != parameter.KEYWORD_ONLY:
                    positional[index] = value
                else:
                    kwargs[parameter.name] = value
                error = _raised(method, positional, kwargs)
                cleanup(name, prep)
                if error is None or (
                    isinstance(error, ControlPlaneError)
                    and not isinstance(error, GovernanceUnavailableError)
                ):
                    continue
                escaped.append(f"{name}({parameter.name}={label}): {type(error).__name__}: {error}")
    assert not escaped, "\n".join(escaped)


def _raised(method: Any, args: list[Any], kwargs: dict[str, Any]) -> Exception | None:
    try:
        method(*args, **kwargs)
    except Exception as error:
        return error
    return None


def test_wrong_types_name_the_argument(control_plane: ControlPlane) -> None:
    cp: Any = control_plane  # called with the wrong types on purpose
    policy = cp.apply_policy(SUPPORT_BOT)
    sid = cp.open_session(agent_id="a", policy=policy.id, max_cost=5, max_actions=5).id
    decision = cp.govern(sid, "read_ticket")
    cp.set_prices({"m": {"input": "1", "output": "2"}})
    cases: list[tuple[str, Any]] = [
        ("decision", lambda: cp.record_outcome(decision.to_json_data(), "succeeded")),
        ("decision", lambda: cp.outcome_of({"session_id": str(sid)})),
        ("usage", lambda: cp.record_usage(Identity(org="o"), "m", {"input": 1})),
        (
            "identity",
            lambda: cp.reserve_tokens({"org": "o"}, "m", input_tokens=1, max_output_tokens=1),
        ),
        ("reservation", lambda: cp.settle({"id": "x"}, TokenUsage(1, 1))),
        ("session_id", lambda: cp.get_session(nested(1000))),
        ("cursor", lambda: cp.list_sessions(cursor=b"abc")),
        ("timeout", lambda: cp.wait_for_decision(uuid.uuid4(), float("nan"))),
        (
            "policy",
            lambda: cp.open_session(agent_id="a", policy=42, max_cost=1, max_actions=1),
        ),
    ]
    for field, call in cases:
        with pytest.raises(InvalidInputError) as raised:
            call()
        assert raised.value.field == field


async def test_async_refuses_alike(async_control_plane: AsyncControlPlane) -> None:
    untyped: Any = async_control_plane
    policy = await async_control_plane.apply_policy(SUPPORT_BOT)
    sid = (
        await async_control_plane.open_session(
            agent_id="a", policy=policy.id, max_cost=5, max_actions=5
        )
    ).id
    for call in (
        lambda: async_control_plane.govern(sid, "read_ticket", args={"q": "\ud800"}),
        lambda: async_control_plane.govern(sid, "read_ticket", args=nested(MAX_DOCUMENT_DEPTH + 1)),
        lambda: async_control_plane.list_sessions(cursor=_forged_cursor("2020-01-01T00:00:00")),
        lambda: untyped.record_outcome({"cost": 1}, "succeeded"),
    ):
        error = await raised_by(call, (), {})
        assert isinstance(error, InvalidInputError), error


def test_a_cost_past_the_money_limit_is_refused_before_anything_is_held(
    control_plane: ControlPlane,
) -> None:
    """The largest price times the largest count is far past what ACP records in exact
    money: the reservation is refused, it never reaches the database as a bad NUMERIC."""
    control_plane.set_prices({"m": {"input": "1000000000", "output": "1000000000"}})
    control_plane.set_token_budget(Identity(org="o"), "day", max_tokens=2**62)
    with pytest.raises(InvalidInputError) as raised:
        control_plane.reserve_tokens(
            Identity(org="o"), "m", input_tokens=2**61, max_output_tokens=2**61
        )
    assert raised.value.field == "usage"
    assert control_plane.token_budget_status()[0]["reserved"]["tokens"] == 0


# --- the rules themselves, for any text -------------------------------------------------------

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_ORDINARY = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])


@given(
    before=st.text(_ORDINARY, max_size=20),
    surrogate=_SURROGATES,
    after=st.text(_ORDINARY, max_size=20),
)
def test_any_text_with_a_lone_surrogate_is_refused(before: str, surrogate: str, after: str) -> None:
    text = before + surrogate + after
    with pytest.raises(InvalidInputError):
        validation.text(text, "name")
    with pytest.raises(InvalidInputError):
        json_document({"value": text}, field="args")
    with pytest.raises(InvalidInputError):
        json_document({text: 1}, field="args")
    with pytest.raises(InvalidInputError):
        json_document({"list": [[text]]}, field="args")


@given(value=st.text(_ORDINARY, min_size=1, max_size=50))
def test_any_other_text_is_kept_as_it_is(value: str) -> None:
    assert validation.text(value, "name", limit=1000) == value
    assert json_document({"v": value, value: [value]}, field="args") == {
        "v": value,
        value: [value],
    }


def test_any_args_are_stored_or_refused_never_raised_raw(tmp_path: Path) -> None:
    """Arbitrary text (surrogates included) at any depth, through govern on SQLite."""
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        policy = cp.apply_policy(SUPPORT_BOT)
        sid = cp.open_session(agent_id="a", policy=policy.id, max_cost=5, max_actions=10**6).id

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            args=st.recursive(
                st.text(max_size=5) | st.integers(), lambda inner: st.lists(inner), max_leaves=40
            )
        )
        def govern_with(args: Any) -> None:
            used = cp.get_session(sid).actions_used
            try:
                decision = cp.govern(sid, "read_ticket", args={"a": args})
            except InvalidInputError:
                assert cp.get_session(sid).actions_used == used
            else:
                assert decision.allowed

        govern_with()


def test_aware_refuses_a_time_that_overflows_in_utc() -> None:
    assert validation.aware(datetime(9999, 12, 31, tzinfo=UTC), "at") is not None
    with pytest.raises(InvalidInputError):
        validation.aware(datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))), "at")
