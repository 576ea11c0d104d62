"""A Pydantic AI agent under ACP: every tool call governed by a capability, a refund deferred
for a person's approval with Pydantic AI's own deferred tools, paid once when the run resumes,
and the run's token usage charged to a budget.

Runs offline: Pydantic AI's own FunctionModel plays the model's part (no network).

    python examples/pydantic_ai_agent.py [DATABASE_URL]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_control_plane import ControlPlane, Identity
from agent_control_plane.integrations.pydantic_ai import GovernanceCapability, acp_decides

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


def look_up_order(order: str) -> str:
    """Look an order up."""
    return f"order {order}: 25.00 USD, shipped"


def issue_refund(order: str) -> str:
    """Refund an order."""
    refunds_paid.append(order)
    return f"refunded 25.00 USD on order {order}"


def delete_customer(customer: str) -> str:
    """Delete a customer's account."""
    customers_deleted.append(customer)
    return f"deleted {customer}"


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The model's part, scripted: what it asks for depends on how far the run is."""
    answered = sum(isinstance(message, ModelResponse) for message in messages)
    if answered == 0:
        return ModelResponse(
            parts=[
                ToolCallPart("look_up_order", {"order": "981"}, tool_call_id="call_1"),
                ToolCallPart("delete_customer", {"customer": "c-42"}, tool_call_id="call_2"),
            ]
        )
    if answered == 1:
        return ModelResponse(
            parts=[ToolCallPart("issue_refund", {"order": "981"}, tool_call_id="call_3")]
        )
    return ModelResponse(parts=[TextPart("Order 981 is refunded. I may not delete accounts.")])


def shown(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """The tool results among ``messages``."""
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def main(url: str) -> None:
    with ControlPlane.open(url) as cp:
        cp.set_prices({"support-model": {"input": "0.15", "output": "0.60"}})  # USD per 1M
        cp.set_token_budget(Identity(agent="support-bot"), "day", max_tokens=10_000)
        session = cp.open_session(
            "ticket-4711", agent_id="support-bot", policy=POLICY, max_cost="5.00", max_actions=20
        )
        governance = GovernanceCapability(cp, session.id, model="support-model")
        agent = Agent(
            FunctionModel(model),
            output_type=[str, DeferredToolRequests],  # approvals end the run: deferred tools
            tools=[look_up_order, issue_refund, delete_customer],
            capabilities=[governance],
        )

        paused = agent.run_sync("Refund order 981, then delete my account.")
        for part in shown(paused.all_messages()):
            print(f"the model read ({part.tool_name}, {part.outcome}): {part.content}")
        requests = paused.output
        assert isinstance(requests, DeferredToolRequests)
        (call,) = requests.approvals
        ticket = requests.metadata[call.tool_call_id]["ticket_id"]
        print(f"deferred: {call.tool_name} needs approval, ticket {ticket}")

        # Resuming approves the call in Pydantic AI, but ACP's ticket is still pending.
        again = agent.run_sync(
            message_history=paused.all_messages(), deferred_tool_results=acp_decides(requests)
        )
        print(f"resumed before anyone decided: deferred again: {again.output == requests}")
        print(f"refunds paid so far: {refunds_paid}")
        assert isinstance(again.output, DeferredToolRequests)

        cp.approve(ticket, "alice", reason="customer called")  # a person, in ACP
        done = agent.run_sync(
            message_history=again.all_messages(), deferred_tool_results=acp_decides(again.output)
        )
        print(f"agent: {done.output}")
        print(f"refunds paid: {refunds_paid}")
        print(f"delete_customer ran {len(customers_deleted)} times")
        print(f"ticket is {cp.get_ticket(ticket).status}")
        runs = [paused.usage, again.usage, done.usage]
        print(f"Pydantic AI counted {sum(run.total_tokens for run in runs)} tokens")
        (used,) = cp.token_usage(group_by=["agent"])
        print(f"ACP charged {used['total_tokens']} tokens in {used['requests']} model requests")
        for event in cp.events(session.id):
            what = f"{event.kind:<17} {event.action or '':<16} {event.outcome or ''}"
            print(f"audit: {event.seq:>2} {what}")
        print(f"audit chain verified: {cp.verify_audit(session.id).ok}")


if __name__ == "__main__":
    default = f"sqlite:///{Path(tempfile.mkdtemp()) / 'acp-example.db'}"
    main(sys.argv[1] if len(sys.argv) > 1 else default)
