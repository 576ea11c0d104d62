"""Claude Agent SDK: tool calls governed in PreToolUse and can_use_tool, recorded after.

The SDK drives the Claude Code CLI, which needs the network. Two kinds of tests:
the callbacks called directly with the SDK's own input types (``ToolPermissionContext``,
the hook input TypedDicts) and checked against its own output types; and whole runs of
``ClaudeSDKClient`` against a stand-in CLI that speaks the SDK's control protocol
(tests/claude_cli/fake_claude.py), where SDK MCP tools run in this process and append
to a list when their body runs.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    HookContext,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    SdkMcpTool,
    ToolPermissionContext,
    create_sdk_mcp_server,
    tool,
)
from claude_agent_sdk.types import (
    HookInput,
    HookJSONOutput,
    PostToolUseFailureHookInput,
    PostToolUseHookInput,
    PreToolUseHookInput,
)

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.integrations.claude_agent_sdk import ClaudeGovernance
from tests.claude_helpers import fake_cli, run
from tests.databases import TestDatabase

POLICY: dict[str, Any] = {
    "name": "claude",
    "tiers": {
        "unrestricted": ["Read", "mcp__shop__look_up_order", "mcp__shop__flaky_lookup"],
        "blocked": ["Bash", "mcp__shop__delete_customer"],
        "always_approve": ["mcp__shop__issue_refund"],
    },
}
CONTEXT: HookContext = {"signal": None}


async def _session(acp: AsyncControlPlane) -> uuid.UUID:
    opened = await acp.open_session(agent_id="claude-bot", policy=POLICY, max_cost=9, max_actions=9)
    return opened.id


def _pre(tool: str, tool_input: dict[str, Any], call_id: str) -> PreToolUseHookInput:
    return {
        "session_id": "claude-session",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/work",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": call_id,
    }


def _post(tool: str, tool_input: dict[str, Any], call_id: str) -> PostToolUseHookInput:
    return {
        "session_id": "claude-session",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/work",
        "hook_event_name": "PostToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_response": {"content": "line 1"},
        "tool_use_id": call_id,
    }


def _failure(tool: str, call_id: str, error: str, interrupted: bool) -> PostToolUseFailureHookInput:
    return {
        "session_id": "claude-session",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/work",
        "hook_event_name": "PostToolUseFailure",
        "tool_name": tool,
        "tool_input": {"order": "1"},
        "tool_use_id": call_id,
        "error": error,
        "is_interrupt": interrupted,
    }


def _permission(call_id: str) -> ToolPermissionContext:
    return ToolPermissionContext(signal=None, suggestions=[], tool_use_id=call_id)


def _decision_of(output: HookJSONOutput) -> tuple[str | None, str]:
    specific: Any = output.get("hookSpecificOutput") or {}
    return specific.get("permissionDecision"), specific.get("permissionDecisionReason", "")


async def _trail(acp: AsyncControlPlane, sid: uuid.UUID) -> list[tuple[str, Any, Any]]:
    return [
        (e.kind, e.action, e.outcome) for e in await acp.events(sid) if e.kind != "session.opened"
    ]


# -- the callbacks, with the SDK's own types ------------------------------------------------


async def test_the_hook_denies_what_acp_refuses_and_allows_by_saying_nothing(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid)

    denied = await governance.pre_tool_use(
        _pre("Bash", {"command": "rm -rf /"}, "t1"), "t1", CONTEXT
    )
    answer, reason = _decision_of(denied)
    assert answer == "deny"
    assert "refused Bash (denied: tier.blocked:Bash)" in reason

    allowed = await governance.pre_tool_use(
        _pre("Read", {"file_path": "a.txt"}, "t2"), "t2", CONTEXT
    )
    assert allowed == {}  # no opinion: the SDK's own permission rules still apply
    recorded = await governance.post_tool_use(
        _post("Read", {"file_path": "a.txt"}, "t2"), "t2", CONTEXT
    )
    assert recorded == {}
    assert await _trail(acp, sid) == [
        ("decision", "Bash", "denied"),
        ("decision", "Read", "allowed"),
        ("outcome", "Read", "succeeded"),
    ]
    assert (await acp.get_session(sid)).actions_used == 1


async def test_can_use_tool_answers_with_the_sdks_permission_results(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid)

    allowed = await governance.can_use_tool("Read", {"file_path": "a.txt"}, _permission("t1"))
    assert isinstance(allowed, PermissionResultAllow)
    denied = await governance.can_use_tool("Bash", {"command": "ls"}, _permission("t2"))
    assert isinstance(denied, PermissionResultDeny)
    assert "tier.blocked:Bash" in denied.message
    refund = await governance.can_use_tool(
        "mcp__shop__issue_refund", {"order": "9"}, _permission("t3")
    )
    assert isinstance(refund, PermissionResultDeny)
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items
    assert f"A person must approve it first (ticket {ticket.id})" in refund.message


async def test_the_hook_and_can_use_tool_are_one_decision(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid)
    arguments = {"file_path": "a.txt"}
    assert await governance.pre_tool_use(_pre("Read", arguments, "t1"), "t1", CONTEXT) == {}
    answer = await governance.can_use_tool("Read", arguments, _permission("t1"))
    assert isinstance(answer, PermissionResultAllow)
    # Asked again under the same key (a replayed hook): still one charge.
    assert await governance.pre_tool_use(_pre("Read", arguments, "t1"), "t1", CONTEXT) == {}
    assert (await acp.get_session(sid)).actions_used == 1
    assert [k for k, _, _ in await _trail(acp, sid)] == ["decision"]


async def test_a_reused_tool_use_id_asking_something_else_is_governed_anew(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid)
    await governance.pre_tool_use(_pre("Read", {"file_path": "a"}, "t1"), "t1", CONTEXT)
    await governance.pre_tool_use(_pre("Read", {"file_path": "b"}, "t1"), "t1", CONTEXT)
    denied = await governance.pre_tool_use(_pre("Bash", {"command": "x"}, "t1"), "t1", CONTEXT)
    assert _decision_of(denied)[0] == "deny"
    assert (await acp.get_session(sid)).actions_used == 2


def test_one_call_asked_from_two_processes_at_once_is_charged_once(
    two_control_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    one, other = two_control_planes
    sid = one.open_session(agent_id="c", policy=POLICY, max_cost=9, max_actions=9).id
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def ask(cp: ControlPlane) -> None:
        governance = ClaudeGovernance(cp, sid)  # each process has its own
        barrier.wait()
        hook = _pre("Read", {"file_path": "a.txt"}, "toolu_1")
        answers.append(asyncio.run(governance.pre_tool_use(hook, "toolu_1", CONTEXT)))

    threads = [threading.Thread(target=ask, args=(cp,)) for cp in (one, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [{}, {}]
    assert one.get_session(sid).actions_used == 1
    assert [e.kind for e in one.events(sid)].count("decision") == 1


async def test_failures_and_interrupts_are_recorded(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid)
    tool_name = "mcp__shop__look_up_order"
    for call_id in ("t1", "t2"):
        await governance.pre_tool_use(_pre(tool_name, {"order": "1"}, call_id), call_id, CONTEXT)
    failed = _failure(tool_name, "t1", "warehouse offline", interrupted=False)
    await governance.post_tool_use_failure(failed, "t1", CONTEXT)
    interrupted = _failure(tool_name, "t2", "interrupted by the user", interrupted=True)
    await governance.post_tool_use_failure(interrupted, "t2", CONTEXT)
    outcomes = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert [e.outcome for e in outcomes] == ["failed", "cancelled"]
    assert "warehouse offline" in str(outcomes[0].payload)


async def test_native_approvals_wait_for_acps_ticket(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _session(acp)
    governance = ClaudeGovernance(acp, sid, approvals="native", approval_wait=10)
    refund, arguments = "mcp__shop__issue_refund", {"order": "9"}

    hook = await governance.pre_tool_use(_pre(refund, arguments, "t1"), "t1", CONTEXT)
    answer, reason = _decision_of(hook)
    assert answer == "ask"  # hands the call to can_use_tool, the SDK's place for a person
    (ticket,) = (await acp.list_tickets(session_id=sid, status="pending")).items
    assert str(ticket.id) in reason

    waiting = asyncio.create_task(governance.can_use_tool(refund, arguments, _permission("t1")))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await acp.approve(ticket.id, "alice")
    assert isinstance(await waiting, PermissionResultAllow)
    assert (await acp.get_ticket(ticket.id)).status == "consumed"
    assert (await acp.get_session(sid)).actions_used == 1

    # Denied by a person: refused. Nobody answers in time: refused, the ticket still open.
    for call_id, person in (("t2", "deny"), ("t3", None)):
        asked = {"order": call_id}
        hook = await governance.pre_tool_use(_pre(refund, asked, call_id), call_id, CONTEXT)
        assert _decision_of(hook)[0] == "ask"
        pending = (await acp.list_tickets(session_id=sid, status="pending")).items[-1]
        if person == "deny":
            await acp.deny(pending.id, "bob", "no")
        governance_now = ClaudeGovernance(acp, sid, approvals="native", approval_wait=0.2)
        result = await governance_now.can_use_tool(refund, asked, _permission(call_id))
        assert isinstance(result, PermissionResultDeny)
        status = "denied" if person else "pending"
        assert (await acp.get_ticket(pending.id)).status == status
    assert (await acp.get_session(sid)).actions_used == 1


def test_a_sync_control_plane_serves_the_callbacks(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="c", policy=POLICY, max_cost=9, max_actions=9).id
    governance = ClaudeGovernance(cp, sid)

    async def both() -> tuple[Any, Any]:
        allowed = await governance.can_use_tool("Read", {"file_path": "x"}, _permission("t1"))
        denied = await governance.pre_tool_use(_pre("Bash", {"command": "x"}, "t2"), "t2", CONTEXT)
        return allowed, denied

    allowed, denied = asyncio.run(both())
    assert isinstance(allowed, PermissionResultAllow)
    assert _decision_of(denied)[0] == "deny"
    assert cp.get_session(sid).actions_used == 1


def test_options_wire_hooks_and_can_use_tool(tmp_path: Path) -> None:
    async def own(
        input_data: HookInput, call_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        return {}

    with ControlPlane.open(f"sqlite:///{tmp_path / 'a.db'}") as cp:
        _check_options(ClaudeGovernance(cp, uuid.uuid4()), own)


def _check_options(governance: ClaudeGovernance, own: Any) -> None:
    mine = HookMatcher(matcher="Bash", hooks=[own])
    options = governance.options(ClaudeAgentOptions(hooks={"PreToolUse": [mine]}))
    assert options.can_use_tool == governance.can_use_tool
    assert options.hooks is not None
    pre = options.hooks["PreToolUse"]
    assert pre[0].hooks == [governance.pre_tool_use]
    assert pre[1] is mine
    assert options.hooks["PostToolUse"][0].hooks == [governance.post_tool_use]
    assert options.hooks["PostToolUseFailure"][0].hooks == [governance.post_tool_use_failure]

    async def theirs(name: str, data: dict[str, Any], context: ToolPermissionContext) -> Any:
        return PermissionResultAllow()

    with pytest.raises(ConfigurationError, match="can_use_tool"):
        governance.options(ClaudeAgentOptions(can_use_tool=theirs))


# -- whole runs of the SDK against the stand-in CLI -----------------------------------------


class Shop:
    """SDK MCP tools that run in this process; each records that its body ran."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []

    def server(self) -> Any:
        def make(name: str, reply: str, fails: bool = False) -> SdkMcpTool[Any]:
            @tool(name, f"The shop's {name}.", {"order": str})
            async def body(args: dict[str, Any]) -> dict[str, Any]:
                self.ran.append((name, dict(args)))
                if fails:
                    raise RuntimeError("warehouse offline")
                return {"content": [{"type": "text", "text": reply.format(**args)}]}

            return body

        tools = [
            make("look_up_order", "order {order}: 25.00 USD"),
            make("delete_customer", "deleted {order}"),
            make("issue_refund", "refunded order {order}"),
            make("flaky_lookup", "", fails=True),
        ]
        return create_sdk_mcp_server("shop", tools=tools)


async def test_through_the_sdk_a_refused_tool_never_runs(
    async_control_plane: AsyncControlPlane, tmp_path: Path
) -> None:
    acp, shop = async_control_plane, Shop()
    sid = await _session(acp)
    calls = [
        ("mcp__shop__look_up_order", "toolu_1", {"order": "981"}),
        ("mcp__shop__delete_customer", "toolu_2", {"order": "981"}),
        ("mcp__shop__issue_refund", "toolu_3", {"order": "981"}),
        ("mcp__shop__flaky_lookup", "toolu_4", {"order": "982"}),
    ]
    options = ClaudeGovernance(acp, sid).options(
        ClaudeAgentOptions(mcp_servers={"shop": shop.server()}, **fake_cli(tmp_path, calls))
    )
    shown = await run(options)

    assert shop.ran == [
        ("look_up_order", {"order": "981"}),
        ("flaky_lookup", {"order": "982"}),
    ]
    assert shown["toolu_1"].content == "order 981: 25.00 USD"
    assert shown["toolu_2"].is_error
    assert "tier.blocked:mcp__shop__delete_customer" in str(shown["toolu_2"].content)
    assert "A person must approve it first" in str(shown["toolu_3"].content)
    assert await _trail(acp, sid) == [
        ("decision", "mcp__shop__look_up_order", "allowed"),
        ("outcome", "mcp__shop__look_up_order", "succeeded"),
        ("decision", "mcp__shop__delete_customer", "denied"),
        ("decision", "mcp__shop__issue_refund", "needs_approval"),
        ("decision", "mcp__shop__flaky_lookup", "allowed"),
        ("outcome", "mcp__shop__flaky_lookup", "failed"),
    ]
    assert (await acp.get_session(sid)).actions_used == 2


def test_through_the_sdk_a_native_approval_runs_the_tool_once(
    database: TestDatabase, tmp_path: Path
) -> None:
    shop = Shop()
    with ControlPlane.open(database.url_string) as cp:
        sid = cp.open_session(agent_id="c", policy=POLICY, max_cost=9, max_actions=9).id

        def approve_when_asked() -> None:  # a person, in another process's place
            with ControlPlane.open(database.url_string) as operator:
                for _ in range(200):
                    pending = operator.list_tickets(session_id=sid, status="pending").items
                    if pending:
                        operator.approve(pending[0].id, "alice")
                        return
                    threading.Event().wait(0.05)

        person = threading.Thread(target=approve_when_asked)
        person.start()
        calls = [("mcp__shop__issue_refund", "toolu_1", {"order": "981"})]
        governance = ClaudeGovernance(cp, sid, approvals="native", approval_wait=20)
        options = governance.options(
            ClaudeAgentOptions(mcp_servers={"shop": shop.server()}, **fake_cli(tmp_path, calls))
        )
        shown = asyncio.run(run(options))
        person.join(timeout=30)

        assert shop.ran == [("issue_refund", {"order": "981"})]
        assert shown["toolu_1"].content == "refunded order 981"
        (ticket,) = cp.list_tickets(session_id=sid).items
        assert ticket.status == "consumed"
        outcomes = [e.outcome for e in cp.events(sid) if e.kind == "outcome"]
        assert outcomes == ["succeeded"]
        assert cp.get_session(sid).actions_used == 1
