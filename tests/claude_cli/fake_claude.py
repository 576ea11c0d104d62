"""A stand-in for the Claude Code CLI that the Claude Agent SDK drives, for offline tests.

It speaks the SDK's control protocol over stdin/stdout (stream-json) as the real CLI does
for what these tests need: it answers ``initialize``, then, for each tool call of the
script named by ``FAKE_CLAUDE_SCRIPT`` (a JSON list of ``{"id", "tool", "input"}``), asks
the SDK's ``PreToolUse`` hooks, then ``can_use_tool`` (unless a hook allowed the call or
denied it), runs an allowed call of an SDK MCP tool (``mcp__<server>__<tool>``) through the
SDK's ``mcp_message`` (so the tool's body runs in the SDK's process), tells the
``PostToolUse`` or ``PostToolUseFailure`` hooks, and sends the model's view of each call as
a ``tool_result``. It ends with a ``result`` message. No model, no network.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from typing import Any

_ids = itertools.count(1)
_SESSION = "fake-claude-session"


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def read() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    message: dict[str, Any] = json.loads(line)
    return message


def ask(request: dict[str, Any]) -> dict[str, Any]:
    """A control request to the SDK, and its answer."""
    request_id = f"cli_{next(_ids)}"
    send({"type": "control_request", "request_id": request_id, "request": request})
    while True:
        message = read()
        if message.get("type") != "control_response":
            continue
        response: dict[str, Any] = message["response"]
        if response.get("request_id") != request_id:
            continue
        if response["subtype"] == "error":
            raise RuntimeError(f"SDK error for {request['subtype']}: {response['error']}")
        answer: dict[str, Any] = response.get("response") or {}
        return answer


def matches(matcher: str | None, tool: str) -> bool:
    return matcher in (None, "", "*") or re.fullmatch(matcher, tool) is not None


def run_hooks(hooks: dict[str, Any], event: str, tool: str, data: dict[str, Any]) -> list[Any]:
    outputs = []
    for entry in hooks.get(event) or []:
        if not matches(entry.get("matcher"), tool):
            continue
        for callback in entry["hookCallbackIds"]:
            hook_input = {
                "session_id": _SESSION,
                "transcript_path": "/dev/null",
                "cwd": os.getcwd(),
                "hook_event_name": event,
                **data,
            }
            request = {
                "subtype": "hook_callback",
                "callback_id": callback,
                "input": hook_input,
                "tool_use_id": data.get("tool_use_id"),
            }
            outputs.append(ask(request))
    return outputs


def pre_decision(outputs: list[dict[str, Any]]) -> tuple[str | None, str]:
    """deny wins over ask, ask over allow (as the CLI combines hooks)."""
    found: dict[str, str] = {}
    for output in outputs:
        specific = output.get("hookSpecificOutput") or {}
        decision = specific.get("permissionDecision")
        if decision:
            found.setdefault(decision, specific.get("permissionDecisionReason", ""))
    for decision in ("deny", "ask", "allow"):
        if decision in found:
            return decision, found[decision]
    return None, ""


def call_mcp(server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    def rpc(method: str, params: dict[str, Any], notify: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            message["id"] = next(_ids)
        answer = ask({"subtype": "mcp_message", "server_name": server, "message": message})
        reply: dict[str, Any] = answer.get("mcp_response") or {}
        return reply

    rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fake-claude", "version": "0"},
        },
    )
    rpc("notifications/initialized", {}, notify=True)
    return rpc("tools/call", {"name": tool, "arguments": arguments})


def tool_result(call_id: str, text: str, is_error: bool) -> None:
    block = {"type": "tool_result", "tool_use_id": call_id, "content": text, "is_error": is_error}
    send({"type": "user", "message": {"role": "user", "content": [block]}})


def perform(hooks: dict[str, Any], call: dict[str, Any]) -> None:
    tool, tool_input, call_id = call["tool"], call["input"], call["id"]
    send(
        {
            "type": "assistant",
            "message": {
                "model": "fake",
                "content": [{"type": "tool_use", "id": call_id, "name": tool, "input": tool_input}],
            },
            "parent_tool_use_id": None,
        }
    )
    base = {"tool_name": tool, "tool_input": tool_input, "tool_use_id": call_id}
    decision, reason = pre_decision(run_hooks(hooks, "PreToolUse", tool, base))
    if decision == "deny":
        tool_result(call_id, reason, True)
        return
    if decision != "allow":
        permission = ask(
            {
                "subtype": "can_use_tool",
                "tool_name": tool,
                "input": tool_input,
                "permission_suggestions": [],
                "tool_use_id": call_id,
                "decision_reason": reason or None,
            }
        )
        if permission.get("behavior") != "allow":
            tool_result(call_id, permission.get("message", "denied"), True)
            return
        tool_input = permission.get("updatedInput") or tool_input
    _, server, name = tool.split("__", 2)
    reply = call_mcp(server, name, tool_input)
    result = reply.get("result") or {}
    text = " ".join(c.get("text", "") for c in result.get("content", []))
    if "error" in reply or result.get("isError"):
        error = text or json.dumps(reply.get("error"))
        run_hooks(hooks, "PostToolUseFailure", tool, {**base, "error": error})
        tool_result(call_id, error, True)
        return
    run_hooks(hooks, "PostToolUse", tool, {**base, "tool_response": result})
    tool_result(call_id, text, False)


def main() -> None:
    with open(os.environ["FAKE_CLAUDE_SCRIPT"]) as script_file:
        script: list[dict[str, Any]] = json.load(script_file)
    hooks: dict[str, Any] = {}
    while True:  # the SDK initializes, then sends the user's prompt
        message = read()
        if message.get("type") == "control_request":
            request = message["request"]
            if request.get("subtype") == "initialize":
                hooks = request.get("hooks") or {}
            send(
                {
                    "type": "control_response",
                    "response": {
                        "subtype": "success",
                        "request_id": message["request_id"],
                        "response": {},
                    },
                }
            )
        elif message.get("type") == "user":
            break
    for call in script:
        perform(hooks, call)
    send(
        {
            "type": "result",
            "subtype": "success",
            "duration_ms": 1,
            "duration_api_ms": 0,
            "is_error": False,
            "num_turns": len(script) + 1,
            "session_id": _SESSION,
            "result": "done",
        }
    )
    while read():  # until the SDK closes stdin
        pass


if __name__ == "__main__":
    main()
