"""API keys on every database: created once, authenticated, listed, revoked; and ``acp keys``."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.cli import app
from agent_control_plane.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    InvalidInputError,
)
from agent_control_plane.rules.keys import hash_secret, parse_key
from tests.databases import TestDatabase

runner = CliRunner()


def _reason(control_plane: ControlPlane, raw: str | None) -> str:
    with pytest.raises(AuthenticationError) as caught:
        control_plane.authenticate_api_key(raw)
    return caught.value.reason


def test_a_key_is_shown_once_and_stored_only_as_a_hash(
    control_plane: ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = control_plane.create_api_key("approver", tenant="acme", name="alice")
    key_id, secret = parse_key(issued.key)
    assert key_id == issued.key_id == issued.api_key.key_id
    assert issued.key not in repr(issued)
    keys = control_plane.tables.api_keys
    with control_plane.engine.connect() as connection:
        row = connection.execute(select(keys)).one()
    assert row.secret_hash == hash_secret(secret)
    assert secret not in {str(value) for value in row}
    assert secret not in caplog.text

    principal = control_plane.authenticate_api_key(issued.key)
    assert (principal.key_id, principal.role, principal.tenant, principal.name) == (
        key_id,
        "approver",
        "acme",
        "alice",
    )
    [listed] = control_plane.list_api_keys()
    assert listed.last_used_at is not None
    assert listed == control_plane.list_api_keys(tenant="acme")[0]
    assert control_plane.list_api_keys(tenant="globex") == []


def test_missing_malformed_unknown_and_revoked_keys_are_refused(
    control_plane: ControlPlane,
) -> None:
    issued = control_plane.create_api_key("agent", agents=["bot"])
    key_id, secret = parse_key(issued.key)
    other_secret = ("B" if secret[0] == "A" else "A") + secret[1:]
    assert _reason(control_plane, None) == "missing"
    assert _reason(control_plane, "not-a-key") == "malformed"
    assert _reason(control_plane, f"acp_{'0' * 16}_{secret}") == "unknown"
    assert _reason(control_plane, f"acp_{key_id}_{other_secret}") == "unknown"

    revoked = control_plane.revoke_api_key(key_id)
    assert revoked.revoked
    assert _reason(control_plane, issued.key) == "revoked"
    assert control_plane.revoke_api_key(key_id).revoked_at == revoked.revoked_at
    assert control_plane.list_api_keys(include_revoked=False) == []
    with pytest.raises(ApiKeyNotFoundError):
        control_plane.revoke_api_key("ffffffffffffffff")
    assert control_plane.get_api_key(key_id) == control_plane.revoke_api_key(key_id)
    with pytest.raises(ApiKeyNotFoundError):
        control_plane.get_api_key("ffffffffffffffff")


def test_bad_key_arguments_are_refused_before_writing(control_plane: ControlPlane) -> None:
    with pytest.raises(InvalidInputError, match="role"):
        control_plane.create_api_key("root")
    with pytest.raises(InvalidInputError, match="tenant"):
        control_plane.create_api_key("viewer", tenant="")
    with pytest.raises(InvalidInputError, match="name"):
        control_plane.create_api_key("viewer", name="x" * 201)
    assert control_plane.list_api_keys() == []


async def test_the_async_control_plane_manages_keys(
    async_control_plane: AsyncControlPlane,
) -> None:
    issued = await async_control_plane.create_api_key("viewer")
    principal = await async_control_plane.authenticate_api_key(issued.key)
    assert principal.role == "viewer"
    assert [key.key_id for key in await async_control_plane.list_api_keys()] == [issued.key_id]
    await async_control_plane.revoke_api_key(issued.key_id)
    with pytest.raises(AuthenticationError):
        await async_control_plane.authenticate_api_key(issued.key)


def test_acp_keys_creates_lists_and_revokes(database: TestDatabase) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string):
        pass  # migrate: the CLI only verifies
    created = runner.invoke(app, ["keys", "create", "--role", "admin", "--name", "ops", *url])
    assert created.exit_code == 0, created.output
    key = created.output.splitlines()[0]
    key_id, _ = parse_key(key)
    assert "not shown again" in created.output

    created = runner.invoke(
        app,
        ["keys", "create", "--role", "agent", "--agent", "bot", "--tenant", "acme", "--json", *url],
    )
    agent = json.loads(created.output)
    assert (agent["role"], agent["tenant"], parse_key(agent["key"])[0]) == (
        "agent",
        "acme",
        agent["key_id"],
    )

    listed = runner.invoke(app, ["keys", "list", "--json", *url])
    rows = json.loads(listed.output)
    assert {row["key_id"] for row in rows} == {key_id, agent["key_id"]}
    assert all("key" not in row and "secret_hash" not in row for row in rows)
    assert key not in runner.invoke(app, ["keys", "list", *url]).output

    revoked = runner.invoke(app, ["keys", "revoke", key_id, *url])
    assert (revoked.exit_code, f"revoked {key_id}" in revoked.output) == (0, True)
    assert runner.invoke(app, ["keys", "revoke", "ffffffffffffffff", *url]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--role", "root", *url]).exit_code == 2
    with ControlPlane.open(database.url_string) as cp:
        with pytest.raises(AuthenticationError):
            cp.authenticate_api_key(key)
        assert cp.authenticate_api_key(agent["key"]).tenant == "acme"
