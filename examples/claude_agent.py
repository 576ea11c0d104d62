"""A Claude Agent SDK agent under ACP: every tool call governed before it runs (PreToolUse,
can_use_tool), recorded after it (PostToolUse), a refund waiting for a person's approval.

The tools are in-process SDK MCP tools. The SDK drives the Claude Code CLI, which needs
an account and the network; the test suite runs this very program against a stand-in
CLI that speaks the SDK's control protocol (``--cli``), so it also runs offline.

    python examples/claude_agent.py [DATABASE_URL] [--cli PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    ToolResultBlock,
    UserMessage,
    create_sdk_mcp_server,
    tool,
)

from agent_control_plane import ControlPlane
from agent_control_plane.integrations.claude_agent_sdk import ClaudeGovernance

POLICY: dict[str, Any] = {
    "name": "support-bot",
    "default": "deny",
    "tiers": {
        "auto_approve": ["look_up_order"],
        "always_approve": ["issue_refund"],
        "blocked": ["delete_customer"],
    },
}

refunds_paid: list[str] = []
customers_deleted: list[str] = []


@tool("look_up_order", "Look an order up.", {"order": str})
async def look_up_order(args: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": f"order {args['order']}: 25.00 USD, shipped"}]}


@tool("issue_refund", "Refund an order.", {"order": str})
async def issue_refund(args: dict[str, Any]) -> dict[str, Any]:
    refunds_paid.append(args["order"])
    return {"content": [{"type": "text", "text": f"refunded 25.00 USD on order {args['order']}"}]}


@tool("delete_customer", "Delete a customer's account.", {"customer": str})
async def delete_customer(args: dict[str, Any]) -> dict[str, Any]:
    customers_deleted.append(args["customer"])
    return {"content": [{"type": "text", "text": f"deleted {args['customer']}"}]}


def approve_when_asked(url: str, session_id: Any) -> None:
    """A person approving the refund in ACP (in real life: the dashboard or the CLI)."""
    with ControlPlane.open(url) as operator:
        for _ in range(400):
            pending = operator.list_tickets(session_id=session_id, status="pending").items
            if pending:
                print(f"a person approves ticket {pending[0].id} ({pending[0].action})")
                operator.approve(pending[0].id, "alice", reason="customer called")
                return
            threading.Event().wait(0.05)


async def converse(options: ClaudeAgentOptions) -> None:
    async with ClaudeSDKClient(options=options) as client:
        await client.query("Where is order 981? Refund it, then delete customer c-42.")
        async for message in client.receive_response():
            if isinstance(message, AssistantMessage):
                continue
            if isinstance(message, UserMessage) and isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, ToolResultBlock):
                        print(f"the model read: {block.content}")
            if isinstance(message, ResultMessage):
                break


def main(url: str, cli: str | None) -> None:
    with ControlPlane.open(url) as cp:
        session = cp.open_session(
            "ticket-4711", agent_id="support-bot", policy=POLICY, max_cost="5.00", max_actions=20
        )
        shop = create_sdk_mcp_server("shop", tools=[look_up_order, issue_refund, delete_customer])
        governance = ClaudeGovernance(
            cp,
            session.id,
            approvals="native",  # can_use_tool waits for ACP's ticket
            approval_wait=60,
            actions=lambda name, _: name.removeprefix("mcp__shop__"),  # the policy's names
        )
        options = governance.options(
            ClaudeAgentOptions(mcp_servers={"shop": shop}, cli_path=cli, max_turns=6)
        )
        person = threading.Thread(target=approve_when_asked, args=(url, session.id))
        person.start()
        asyncio.run(converse(options))
        person.join(timeout=30)

        print(f"refunds paid: {refunds_paid}")
        print(f"delete_customer ran {len(customers_deleted)} times")
        for event in cp.events(session.id):
            what = f"{event.kind:<17} {event.action or '':<16} {event.outcome or ''}"
            print(f"audit: {event.seq:>2} {what}")
        print(f"audit chain verified: {cp.verify_audit(session.id).ok}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    default = f"sqlite:///{Path(tempfile.mkdtemp()) / 'acp-example.db'}"
    parser.add_argument("url", nargs="?", default=default)
    parser.add_argument("--cli", help="the Claude Code CLI to drive (default: the SDK's own)")
    arguments = parser.parse_args()
    main(arguments.url, arguments.cli)
