"""The policy's ``tools`` section: validation, and turning a tool call into a govern request."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent_control_plane.errors import PolicyError
from agent_control_plane.loading import load_policy_file
from agent_control_plane.rules.policy import parse_policy
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.rules.tools import UNMAPPED, ToolRefused, tool_request, visible

POLICY: dict[str, Any] = {
    "name": "fs",
    "tiers": {"auto_approve": ["fs.read"], "blocked": ["fs.delete"]},
    "tools": {
        "read_file": {
            "action": "fs.read",
            "risk": {"weight": 0.1, "score": 0.9},
            "cost": "0.001",
            "resource": "file:{path}",
        },
        "delete_file": {"action": "fs.delete"},
    },
}


def test_a_tool_call_becomes_the_policy_s_action_risk_and_cost() -> None:
    document = parse_policy(POLICY)
    request = tool_request(document, "read_file", {"path": "/srv/a.txt", "weight": 0})
    assert request.action == "fs.read"
    assert request.resource == "file:/srv/a.txt"
    assert request.cost == Decimal("0.001")
    assert (request.weight, request.score) == (0.1, 0.9)
    # The arguments are recorded as they are; they never feed weight, score or cost.
    assert request.args == {"path": "/srv/a.txt", "weight": 0}
    plain = tool_request(document, "delete_file", None)
    assert (plain.resource, plain.cost, plain.weight, plain.args) == (None, Decimal(0), None, {})


def test_unmapped_tools_and_missing_resource_arguments_are_refused() -> None:
    document = parse_policy(POLICY)
    with pytest.raises(ToolRefused, match="not mapped") as unmapped:
        tool_request(document, "rm_rf", {})
    assert unmapped.value.reason == UNMAPPED
    with pytest.raises(ToolRefused, match="path") as missing:
        tool_request(document, "read_file", {"file": "/srv/a.txt"})
    assert missing.value.reason == "tool.resource_argument_missing"


def test_hidden_tools_are_the_unmapped_and_the_blocked() -> None:
    policy = CompiledPolicy.compile(parse_policy(POLICY))
    assert visible(policy, "read_file")
    assert not visible(policy, "delete_file")
    assert not visible(policy, "rm_rf")


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ({"read_file": {"action": "fs.*"}}, "no wildcards"),
        ({"read_file": {}}, "action"),
        ({"read file": {"action": "fs.read"}}, "not an MCP tool name"),
        ({"read_file": {"action": "fs.read", "cost": "-1"}}, "negative"),
        ({"read_file": {"action": "fs.read", "cost": 0.5}}, "as a string"),
        ({"read_file": {"action": "fs.read", "cost": "0.0000000001"}}, "decimal places"),
        ({"read_file": {"action": "fs.read", "risk": {"weight": 2}}}, "less than or equal"),
        ({"read_file": {"action": "fs.read", "risk": {"level": 1}}}, "Extra inputs"),
        ({"read_file": {"action": "fs.read", "resource": "file:{path!r}"}}, "one argument"),
        ({"read_file": {"action": "fs.read", "resource": "file:{0}"}}, "one argument"),
        ({"read_file": {"action": "fs.read", "resource": "file:{path"}}, "template"),
        ({"read_file": {"action": "fs.read", "timeout": 3}}, "Extra inputs"),
    ],
)
def test_bad_tool_mappings_are_refused_with_their_location(
    tools: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as error:
        parse_policy({"name": "fs", "tools": tools})
    assert all(place.startswith("policy: tools") for place, _ in error.value.problems)


def test_tool_errors_in_a_file_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("name: fs\ntools:\n  read_file:\n    action: fs.read\n    cost: '-1'\n")
    with pytest.raises(PolicyError, match=r"policy.yaml:5: tools.read_file.cost"):
        load_policy_file(path)


def test_policies_without_tools_keep_their_digest() -> None:
    """Adding the section must not change what stored policies hash to."""
    assert "tools" not in parse_policy({"name": "plain"}).to_json_data()
    with_tools = parse_policy(POLICY).to_json_data()
    assert with_tools["tools"]["read_file"]["cost"] == "0.001000000"
    assert parse_policy(with_tools) == parse_policy(POLICY)
