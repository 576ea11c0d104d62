"""API key format, hashing and role rules, without a database."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("pattern", "agent_id", "matches"),
    [
        ("bot-1", "bot-1", True),
        ("bot-1", "bot-1-again", False),
        ("bot-1", "bot-10", False),
        ("bot-1", "xbot-1", False),
        ("bot-1*", "bot-1", True),
        ("bot-1*", "bot-1-again", True),
        ("bot-1*", "bot-2", False),
        ("*-eu", "bot-eu", True),
        ("*-eu", "bot-us", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "a-b-b-c", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),
        ("*", "", True),
        ("*", "anything at all", True),
        ("bot?", "bot1", False),
        ("bot[12]", "bot1", False),
        ("bot[12]", "bot[12]", True),
    ],
)
def test_agent_patterns_match_only_what_they_say(
    pattern: str, agent_id: str, matches: bool
) -> None:
    assert keys.agent_matches(pattern, agent_id) is matches


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.text(alphabet="ab-*", max_size=8),
    agent_id=st.text(alphabet="ab-", max_size=10),
)
def test_a_star_matches_as_in_shell_globs(pattern: str, agent_id: str) -> None:
    """``*`` means what it means to fnmatch; nothing else is special."""
    assert keys.agent_matches(pattern, agent_id) is fnmatch.fnmatchcase(agent_id, pattern)


def test_a_long_pattern_is_matched_in_linear_time() -> None:
    pattern = "*a" * 99 + "*b"
    assert not keys.agent_matches(pattern, "a" * 200)


def test_only_an_agent_key_names_agents() -> None:
    assert keys.agent_patterns(Role.AGENT, ["b", "a", "b"]) == ("b", "a")
    assert keys.agent_patterns(Role.AGENT, iter(["*"])) == ("*",)
    assert keys.agent_patterns(Role.ADMIN, None) is None
    for agents in (None, [], "bot", 5, [None], ["ok", ""]):
        with pytest.raises(InvalidInputError) as refused:
            keys.agent_patterns(Role.AGENT, agents)
        assert refused.value.field == "agents"
    for role in (Role.ADMIN, Role.VIEWER, Role.APPROVER):
        with pytest.raises(InvalidInputError, match="only an agent key"):
            keys.agent_patterns(role, ["*"])


@pytest.mark.parametrize(
    ("role", "key_tenant", "key_agents", "expected"),
    [
        # own agent in own tenant, other agent in own tenant, own agent elsewhere, neither
        ("agent", "acme", ("bot-1",), ("allowed", "other_agent", "other_tenant", "other_tenant")),
        ("agent", None, ("bot-1",), ("allowed", "other_agent", "allowed", "other_agent")),
        ("agent", None, ("*",), ("allowed", "allowed", "allowed", "allowed")),
        ("agent", None, None, ("other_agent",) * 4),
        ("admin", "acme", None, ("allowed", "allowed", "other_tenant", "other_tenant")),
        ("viewer", None, None, ("allowed",) * 4),
    ],
)
def test_session_access_holds_a_key_to_its_tenant_and_agents(
    role: str, key_tenant: str | None, key_agents: tuple[str, ...] | None, expected: tuple[str, ...]
) -> None:
    targets = [("acme", "bot-1"), ("acme", "bot-2"), ("globex", "bot-1"), ("globex", "bot-2")]
    found = tuple(
        keys.session_access(role, key_tenant, key_agents, tenant, agent)
        for tenant, agent in targets
    )
    assert found == expected
    # What belongs to no agent (a reservation made without one) is no agent key's.
    assert keys.session_access("agent", None, ("*",), None, None) is keys.Access.OTHER_AGENT
    assert keys.session_access("admin", None, None, None, None) is keys.Access.ALLOWED


def test_a_key_expires_when_it_says() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert keys.expiry(None, None, now) is None
    assert keys.expiry(None, timedelta(days=1), now) == datetime(2030, 1, 2, tzinfo=UTC)
    assert keys.expiry(now + timedelta(seconds=1), None, now) == now + timedelta(seconds=1)
    keys.require_live("k", None, None, now)
    keys.require_live("k", None, now + timedelta(microseconds=1), now)
    for revoked_at, expires_at, reason in (
        (now, None, "revoked"),
        (now, now, "revoked"),
        (None, now, "expired"),
        (None, now - timedelta(days=1), "expired"),
    ):
        with pytest.raises(AuthenticationError) as refused:
            keys.require_live("k", revoked_at, expires_at, now)
        assert refused.value.reason == reason


def test_a_principal_acts_as_its_agents() -> None:
    bound = Principal("0123456789abcdef", "agent", "acme", None, ("bot-1", "ops-*"))
    assert bound.acts_as("bot-1")
    assert bound.acts_as("ops-eu")
    assert not bound.acts_as("bot-1-again")
    assert bound.access("acme", "bot-2") is keys.Access.OTHER_AGENT
    assert bound.access("globex", "bot-1") is keys.Access.OTHER_TENANT
    assert Principal("0123456789abcdef", "admin", None, None).acts_as("anyone")
    assert keys.sole_agent(("bot-1",)) == "bot-1"
    assert keys.sole_agent(("bot-*",)) is None
    assert keys.sole_agent(("a", "b")) is None
    assert keys.sole_agent(None) is None
