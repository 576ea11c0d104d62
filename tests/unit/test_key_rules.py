"""API key format, hashing and role rules, without a database."""

from __future__ import annotations

import pytest

from agent_control_plane.errors import AuthenticationError, InvalidInputError
from agent_control_plane.models import Principal
from agent_control_plane.rules import keys
from agent_control_plane.rules.keys import Permission, Role


def test_a_formatted_key_parses_back_into_its_id_and_secret() -> None:
    key_id, secret = keys.new_key_id(), keys.new_secret()
    assert keys.parse_key(keys.format_key(key_id, secret)) == (key_id, secret)
    assert keys.new_key_id() != key_id
    assert keys.new_secret() != secret


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("acp_", "malformed"),
        ("Bearer acp_0123456789abcdef_" + "a" * 43, "malformed"),
        ("acp_0123456789abcdef_" + "a" * 42, "malformed"),
        ("acp_0123456789ABCDEF_" + "a" * 43, "malformed"),
        ("xyz_0123456789abcdef_" + "a" * 43, "malformed"),
        (12, "malformed"),
    ],
)
def test_a_bad_key_is_refused_with_its_reason(raw: object, reason: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        keys.parse_key(raw)
    assert caught.value.reason == reason
    if isinstance(raw, str) and len(raw) > 10:
        assert raw not in str(caught.value)


def test_secrets_are_compared_by_their_hash() -> None:
    secret = keys.new_secret()
    stored = keys.hash_secret(secret)
    assert len(stored) == 64
    assert stored != secret
    assert keys.secret_matches(secret, stored)
    assert not keys.secret_matches(keys.new_secret(), stored)
    assert not keys.secret_matches(secret, None)


def test_roles_nest_for_reading_and_approving() -> None:
    reading = {Permission.READ, Permission.READ_OWN}
    assert {p for p in Permission if keys.allows(Role.VIEWER, p)} == reading
    assert {p for p in Permission if keys.allows(Role.APPROVER, p)} == {
        *reading,
        Permission.APPROVE,
    }
    assert {p for p in Permission if keys.allows(Role.ADMIN, p)} == set(Permission)
    assert {p for p in Permission if keys.allows(Role.AGENT, p)} == {
        Permission.ACT,
        Permission.READ_OWN,
    }


def test_an_unknown_role_names_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match="role: must be one of agent, approver"):
        keys.role_of("root")
    assert keys.role_of("viewer") is Role.VIEWER


def test_a_tenant_key_sees_only_its_tenant() -> None:
    assert keys.tenant_allows(None, "acme")
    assert keys.tenant_allows(None, None)
    assert keys.tenant_allows("acme", "acme")
    assert not keys.tenant_allows("acme", "globex")
    assert not keys.tenant_allows("acme", None)


def test_a_principal_is_named_by_its_key_id() -> None:
    unnamed = Principal(key_id="0123456789abcdef", role="approver", tenant=None, name=None)
    named = Principal(key_id="0123456789abcdef", role="viewer", tenant="acme", name="alice")
    assert unnamed.identity == "key:0123456789abcdef"
    assert named.identity == "alice (key:0123456789abcdef)"
    assert unnamed.can(Permission.APPROVE)
    assert not named.can(Permission.APPROVE)
    assert named.sees("acme")
    assert not named.sees("globex")
