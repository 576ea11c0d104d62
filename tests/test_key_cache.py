"""Verified API keys are remembered for at most a second: a key revoked anywhere stops
working within it (through this control plane, at once), a wrong secret never matches a
remembered key, an expiry is checked against the clock every time, and the memory is
bounded. And the gateway checks the key before it reads a request's body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_control_plane import ControlPlane
from agent_control_plane.errors import AuthenticationError
from agent_control_plane.gateway import create_app
from agent_control_plane.operations.keys import KEY_RECHECK_SECONDS
from tests.gateway_helpers import Client
from tests.statements import statements_sent


def test_a_key_revoked_by_another_process_stops_working_within_a_second(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    gateway, admin = two_control_planes
    issued = admin.create_api_key("agent", agents=["*"])
    assert gateway.authenticate_api_key(issued.key).key_id == issued.api_key.key_id
    admin.revoke_api_key(issued.api_key.key_id)
    revoked_at = time.monotonic()
    deadline = revoked_at + KEY_RECHECK_SECONDS + 1
    reason = None
    while reason is None:
        try:
            gateway.authenticate_api_key(issued.key)
        except AuthenticationError as refused:
            reason = refused.reason
        else:
            assert time.monotonic() < deadline, "a revoked key still worked after the recheck"
            time.sleep(0.05)
    assert reason == "revoked"
    assert time.monotonic() - revoked_at <= KEY_RECHECK_SECONDS + 0.5


def test_a_key_revoked_through_this_control_plane_stops_at_once(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    issued = cp.create_api_key("admin")
    cp.authenticate_api_key(issued.key)
    cp.revoke_api_key(issued.api_key.key_id)
    with pytest.raises(AuthenticationError) as refused:
        cp.authenticate_api_key(issued.key)
    assert refused.value.reason == "revoked"


def test_a_remembered_key_never_accepts_another_secret(control_plane: ControlPlane) -> None:
    cp = control_plane
    issued = cp.create_api_key("admin")
    cp.authenticate_api_key(issued.key)
    prefix, _, secret = issued.key.rpartition("_")
    forged = f"{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    with pytest.raises(AuthenticationError) as refused:
        cp.authenticate_api_key(forged)
    assert refused.value.reason == "unknown"
    assert cp.authenticate_api_key(issued.key).key_id == issued.api_key.key_id


def test_a_remembered_key_expires_on_time(control_plane: ControlPlane) -> None:
    cp = control_plane
    issued = cp.create_api_key("viewer", expires_in=timedelta(minutes=5))
    cp.authenticate_api_key(issued.key)
    later = datetime.now(UTC) + timedelta(minutes=6)
    cp._runtime = replace(cp._runtime, clock=lambda: later)
    with pytest.raises(AuthenticationError) as refused:
        cp.authenticate_api_key(issued.key)
    assert refused.value.reason == "expired"


def test_a_key_verified_a_moment_ago_is_not_read_again(control_plane: ControlPlane) -> None:
    cp = control_plane
    issued = cp.create_api_key("viewer")
    assert statements_sent(cp, lambda: cp.authenticate_api_key(issued.key))
    assert statements_sent(cp, lambda: cp.authenticate_api_key(issued.key)) == []


def test_a_remembered_key_is_checked_without_the_database(control_plane: ControlPlane) -> None:
    """remembered_principal (for event loops) answers only from memory: None until the key
    was read, never for another secret or a key revoked here, and an expired key fails."""
    cp = control_plane
    issued = cp.create_api_key("viewer", expires_in=timedelta(minutes=5))
    assert cp.remembered_principal(issued.key) is None
    cp.authenticate_api_key(issued.key)
    found: list[Any] = []
    assert statements_sent(cp, lambda: found.append(cp.remembered_principal(issued.key))) == []
    assert found[0] is not None
    assert found[0].key_id == issued.api_key.key_id
    prefix, _, secret = issued.key.rpartition("_")
    assert (
        cp.remembered_principal(f"{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}") is None
    )
    with pytest.raises(AuthenticationError):
        cp.remembered_principal("not a key")
    later = datetime.now(UTC) + timedelta(minutes=6)
    expired = replace(cp._runtime, clock=lambda: later)
    cp._runtime, kept = expired, cp._runtime
    with pytest.raises(AuthenticationError) as refused:
        cp.remembered_principal(issued.key)
    assert refused.value.reason == "expired"
    cp._runtime = kept
    cp.revoke_api_key(issued.api_key.key_id)
    assert cp.remembered_principal(issued.key) is None


def test_the_mcp_proxy_checks_a_remembered_key_without_queueing_behind_governance(
    tmp_path: Any,
) -> None:
    """The HTTP proxy's governance thread may be busy recording the last call's outcome: a
    key it verified a moment ago is checked on the event loop, not queued behind that."""
    from agent_control_plane.integrations.mcp_proxy.governance import OnOneThread
    from agent_control_plane.integrations.mcp_proxy.keys import ApiKeyVerifier

    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        issued = cp.create_api_key("agent", agents=["a1"])
        on_thread = OnOneThread(cp)
        verifier = ApiKeyVerifier(on_thread, None, "a1")

        async def check() -> float:
            assert await verifier.verify_token(issued.key) is not None  # read, remembered
            busy = asyncio.ensure_future(on_thread._on_thread(time.sleep)(1.0))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            token = await verifier.verify_token(issued.key)
            took = time.monotonic() - started
            assert token is not None
            assert token.scopes
            await busy
            return took

        try:
            assert asyncio.run(check()) < 0.5
        finally:
            on_thread.close()


def test_remembered_keys_are_bounded(tmp_path: Any) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        cp._runtime.bound_memory(3)
        issued = [cp.create_api_key("viewer") for _ in range(10)]
        for key in issued:
            cp.authenticate_api_key(key.key)
        assert cp._runtime.memory.sizes()["api_keys"] == 3
        assert cp.authenticate_api_key(issued[0].key).key_id == issued[0].api_key.key_id


def test_the_gateway_refuses_a_wrong_key_before_reading_its_body(tmp_path: Any) -> None:
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        good = cp.create_api_key("agent", agents=["*"])
        app = create_app(cp)
        prefix, _, secret = good.key.rpartition("_")
        wrong = f"{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
        sessions = cp.open_session(agent_id="a", policy={"name": "p"}, max_cost=1, max_actions=1)
        path = f"/v1/sessions/{sessions.id}/govern"

        async def call(key: str) -> tuple[int, int]:
            """The status, and how many times the app asked for the body."""
            reads = 0
            sent: list[MutableMapping[str, Any]] = []

            async def receive() -> dict[str, Any]:
                nonlocal reads
                reads += 1
                return {"type": "http.request", "body": b'{"action": "x"}', "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"host", b"acp"),
                    (b"authorization", f"Bearer {key}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", b"15"),
                ],
                "client": ("127.0.0.1", 1),
                "server": ("acp", 80),
            }
            await app(scope, receive, send)
            return sent[0]["status"], reads

        assert asyncio.run(call(wrong)) == (401, 0)
        status, reads = asyncio.run(call(good.key))
        assert status == 200
        assert reads >= 1


def test_the_gateway_reads_a_sessions_owner_once_and_still_holds_keys_to_it(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    mine = cp.create_api_key("agent", tenant="a", agents=["bot"]).key
    theirs = cp.create_api_key("agent", tenant="b", agents=["bot"]).key
    other_agent = cp.create_api_key("agent", tenant="a", agents=["other"]).key
    sid = cp.open_session(
        agent_id="bot", tenant="a", policy={"name": "p"}, max_cost=10, max_actions=10
    ).id
    client = Client(create_app(cp))
    path = f"/v1/sessions/{sid}/govern"

    def govern(key: str) -> int:
        response = client.request(
            "POST", path, json={"action": "x"}, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code

    assert govern(mine) == 200
    sessions = cp.tables.sessions.name
    sent = statements_sent(cp, lambda: govern(mine))
    # No read of the session's row as a whole (its tenant); govern's own statements remain.
    assert not [sql for sql in sent if sql.startswith("SELECT") and f"{sessions}.tenant" in sql]
    # Remembered, the owner still confines: another tenant's key cannot tell it exists, and
    # another agent's key of the same tenant is refused.
    assert govern(theirs) == 404
    assert govern(other_agent) == 403
