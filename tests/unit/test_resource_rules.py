"""The canonical form of a resource, and how patterns match it (pure, no database)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent_control_plane.errors import PolicyError
from agent_control_plane.rules.policy import parse_policy
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.resources import (
    InvalidResource,
    canonical,
    canonical_root,
    matches,
)
from agent_control_plane.rules.routing import CompiledPolicy, route


@pytest.mark.parametrize(
    ("given_resource", "expected"),
    [
        ("secrets/key.txt", "secrets/key.txt"),
        ("./secrets/key.txt", "secrets/key.txt"),
        ("x/../secrets/key.txt", "secrets/key.txt"),
        ("secrets//key.txt", "secrets/key.txt"),
        ("secrets/key.txt/", "secrets/key.txt"),
        (".", "."),
        ("a/..", "."),
        ("secrets\\key.txt", "secrets/key.txt"),
        ("file:./secrets/key.txt", "file:secrets/key.txt"),
        ("FILE:secrets/key.txt", "file:secrets/key.txt"),
        ("file:x/%2e%2E/secrets", "file:secrets"),
        ("file:secrets%2Fkey", "file:secrets/key"),
        ("file:%73ecrets", "file:secrets"),
        # Decoded once: a double-encoded dot stays a literal "%2e", never "..".
        ("file:%252e%252e/secrets", "file:%252e%252e/secrets"),
        ("file:a%25b", "file:a%b"),
        ("discount:50%", "discount:50%"),
        ("file:///srv/files/a", "file:/srv/files/a"),
        ("file://localhost/srv/./a", "file:/srv/a"),
        ("file:/srv//a/../b", "file:/srv/b"),
        ("file:C:\\Users\\x\\..\\y", "file:C:/Users/y"),
        ("c:/x", "C:/x"),
        ("./C:/x", "./C:/x"),
        ("x/../AB:c", "./AB:c"),
        ("https://Bob:pw@Example.COM/a/./b/../c?q=/../#f", "https://example.com/a/c?q=/../#f"),
        ("mailto:Bob@Example.com", "mailto:Bob@Example.com"),
        ("order:A-1", "order:A-1"),
        ("version:1..2", "version:1..2"),
        ("file:cafe\u0301", "file:caf\u00e9"),
    ],
)
def test_canonical_forms(given_resource: str, expected: str) -> None:
    assert canonical(given_resource) == expected
    assert canonical(expected) == expected


@pytest.mark.parametrize(
    ("given_resource", "why"),
    [
        ("../a", "climbs out of its root"),
        ("a/../../b", "climbs out of its root"),
        ("file:%2e%2e/a", "climbs out of its root"),
        ("file:..%5ca", "climbs out of its root"),
        ("file:/../etc/passwd", "climbs out of /"),
        ("https://h/a/../../b", "climbs out of /"),
        ("file:a%00b", "control character"),
        ("file:a%0Ab", "control character"),
        ("file:a\x7fb", "control character"),
        ("file:%ff", "not UTF-8"),
    ],
)
def test_resources_without_a_canonical_form(given_resource: str, why: str) -> None:
    with pytest.raises(InvalidResource, match=why):
        canonical(given_resource)


def test_a_root_makes_absolute_paths_relative() -> None:
    root = canonical_root("/srv/files/")
    assert root == "/srv/files"
    assert canonical("file:/srv/files/secrets/key", root) == "file:secrets/key"
    assert canonical("/srv/files/./x/../secrets/key", root) == "secrets/key"
    assert canonical("file:///srv/files", root) == "file:."
    assert canonical("file:notes", root) == "file:notes"
    for outside in ("file:/srv/filesystem/a", "file:/etc/passwd", "file:/srv/files/../x"):
        with pytest.raises(InvalidResource):
            canonical(outside, root)
    with pytest.raises(InvalidResource, match="climbs out of its root"):
        canonical("file:../files/secrets/key", root)
    assert canonical("file:C:/srv/a", canonical_root("c:\\srv")) == "file:a"
    for relative in ("srv/files", ".", "file:/x/../.."):
        with pytest.raises(InvalidResource):
            canonical_root(relative)


def test_matching() -> None:
    assert matches("file:secrets/key", "file:secrets/*")
    assert matches("file:secrets/a/b", "file:secrets/*")
    # The folder itself matches the pattern for what is under it.
    assert matches("file:secrets", "file:secrets/*")
    assert not matches("file:secretsx", "file:secrets/*")
    assert not matches("file:SECRETS/key", "file:secrets/*")
    assert matches("file:SECRETS/key", "file:secrets/*", any_case=True)


# Path pieces chosen to hit every rule: dots, separators, encodings, case, Unicode.
PIECES = st.sampled_from(
    [
        "a",
        "B",
        "secrets",
        ".",
        "..",
        "",
        "%2e",
        "%2E%2e",
        "%25",
        "%252e",
        "%2f",
        "%5c",
        "\\",
        "%41",
        "e\u0301",
        "x%",
        "%%41",
        "C:",
    ]
)
PREFIXES = st.sampled_from(["", "/", "file:", "FILE:/", "file://", "file:///", "https://H", "s:"])
RESOURCES = st.builds(lambda p, parts: p + "/".join(parts), PREFIXES, st.lists(PIECES, max_size=8))


def _path_of(resource: str) -> str:
    """The path part of a canonical resource: no scheme, no URL host, query or fragment."""
    scheme = re.match(r"^[a-z][a-z0-9+.-]+:(.*)$", resource, re.DOTALL)
    path = resource if scheme is None else scheme.group(1)
    if path.startswith("//"):
        path = re.split(r"[?#]", "/" + path[2:].partition("/")[2], maxsplit=1)[0]
    return path


def _canonical_or_none(resource: str, root: str | None = None) -> str | None:
    try:
        return canonical(resource, root)
    except InvalidResource:
        return None


@given(st.one_of(RESOURCES, st.text(max_size=40)))
@example("%2525")
@example("%%2541")
def test_the_canonical_form_is_a_fixed_point(resource: str) -> None:
    once = _canonical_or_none(resource)
    if once is not None:
        assert canonical(once) == once


@given(RESOURCES)
def test_the_canonical_form_has_no_dot_segments_or_backslashes(resource: str) -> None:
    once = _canonical_or_none(resource)
    if once is None:
        return
    path = _path_of(once)
    segments = path.split("/")
    assert ".." not in segments
    assert "\\" not in once
    # "." only alone, or first before a segment that would read as a scheme.
    assert "." not in segments[1:]
    assert segments[0] != "." or path == "." or ":" in segments[1]
    assert "" not in segments[1:-1]


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "%2e%2e", "x%2f.."]), max_size=10))
def test_a_canonical_path_never_climbs(parts: list[str]) -> None:
    once = _canonical_or_none("/".join(parts))
    if once is not None:
        assert not once.startswith("..")
        assert ".." not in once.split("/")


@given(st.text(alphabet=st.sampled_from("ab./\\-_é"), max_size=20))
def test_encoding_a_path_once_changes_nothing(path: str) -> None:
    assert _canonical_or_none(quote(path, safe="")) == _canonical_or_none(path)


@given(st.lists(st.sampled_from(["a", "b", "c", ".", ".."]), min_size=1, max_size=6))
def test_a_path_under_the_root_is_the_relative_path(parts: list[str]) -> None:
    relative = "/".join(parts)
    expected = _canonical_or_none(relative)
    assert _canonical_or_none("file:/srv/files/" + relative, "/srv/files") == (
        None if expected is None else "file:" + expected
    )


def _routed(policy: dict[str, Any], resource: str) -> str:
    compiled = CompiledPolicy.compile(parse_policy(policy))
    proposal = Proposal(action="fs.read", resource=canonical(resource))
    return route(compiled, proposal, lambda *_: False).reason


def test_asset_patterns_are_compared_in_canonical_form() -> None:
    policy: dict[str, Any] = {
        "name": "p",
        "default": "allow",
        "assets": {"deny": ["FILE:./secrets/*"], "allow": ["file:public/*", "file:secrets/*"]},
    }
    assert _routed(policy, "file:secrets/a") == "assets.out_of_scope"
    assert _routed(policy, "file:Secrets/a") == "assets.out_of_scope"  # deny: any case
    assert _routed(policy, "file:public/a") == "policy.default_allow"
    assert _routed(policy, "file:Public/a") == "assets.out_of_scope"  # allow: exact case


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"assets": {"deny": ["file:../*"]}}, "can never match a resource"),
        ({"assets": {"allow": ["file:%00"]}}, "can never match a resource"),
        ({"tools": {"t": {"action": "a", "root": "srv"}}}, "must be an absolute path"),
        (
            {
                "assets": {"deny": ["file:/srv/files/secrets/*"]},
                "tools": {"t": {"action": "a", "resource": "file:{p}", "root": "/srv/files"}},
            },
            "write it relative to the root, as 'file:secrets/\\*'",
        ),
    ],
)
def test_policies_that_could_never_match_are_refused(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy({"name": "p", **policy})
