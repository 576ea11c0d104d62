"""A LangChain agent (create_agent) under ACP: every tool call governed by a middleware,
a refund paused for a person's approval with LangGraph's interrupt, paid once on resume.

Runs offline: LangChain's own fake chat model plays the model's part (no network).

    python examples/langchain_agent.py [DATABASE_URL]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent_control_plane import ControlPlane
from agent_control_plane.integrations.langchain import GovernanceMiddleware

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


@tool
def look_up_order(order: str) -> str:
    """Look an order up."""
    return f"order {order}: 25.00 USD, shipped"


@tool
def issue_refund(order: str) -> str:
    """Refund an order."""
    refunds_paid.append(order)
    return f"refunded 25.00 USD on order {order}"


@tool
def delete_customer(customer: str) -> str:
    """Delete a customer's account."""
    customers_deleted.append(customer)
    return f"deleted {customer}"


class ScriptedModel(GenericFakeChatModel):
    """LangChain's fake chat model, accepting the tools create_agent binds to it."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


def calls(*wanted: tuple[str, dict[str, str]]) -> AIMessage:
    """A model turn that calls tools."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{n}"} for n, (name, args) in enumerate(wanted)
        ],
    )


def main(url: str) -> None:
    with ControlPlane.open(url) as cp:
        session = cp.open_session(
            "ticket-4711", agent_id="support-bot", policy=POLICY, max_cost="5.00", max_actions=20
        )
        model = ScriptedModel(
            messages=iter(
                [
                    calls(
                        ("look_up_order", {"order": "981"}),
                        ("delete_customer", {"customer": "c-42"}),
                    ),
                    calls(("issue_refund", {"order": "981"})),
                    "Order 981 is refunded. I may not delete accounts.",
                ]
            )
        )
        agent = create_agent(
            model,
            tools=[look_up_order, issue_refund, delete_customer],
            middleware=[GovernanceMiddleware(cp, session.id)],
            checkpointer=InMemorySaver(),  # approvals pause the agent: it must be resumable
        )
        config: Any = {"configurable": {"thread_id": "conversation-1"}}

        state = agent.invoke({"messages": [{"role": "user", "content": "Refund 981."}]}, config)
        for shown in [m for m in state["messages"] if isinstance(m, ToolMessage)]:
            print(f"the model read ({shown.name}): {shown.content}")
        (pause,) = state["__interrupt__"]
        ticket = pause.value["ticket_id"]
        print(f"paused: {pause.value['action']} needs approval, ticket {ticket}")

        # Resuming says "approve", but ACP's ticket is still pending: nothing is paid.
        state = agent.invoke(Command(resume={"type": "approve"}), config)
        print(f"resumed before anyone decided: paused again: {'__interrupt__' in state}")
        print(f"refunds paid so far: {refunds_paid}")

        cp.approve(ticket, "alice", reason="customer called")  # a person, in ACP
        state = agent.invoke(Command(resume={"type": "approve"}), config)
        print(f"agent: {state['messages'][-1].content}")
        print(f"refunds paid: {refunds_paid}")
        print(f"delete_customer ran {len(customers_deleted)} times")
        print(f"ticket is {cp.get_ticket(ticket).status}")
        for event in cp.events(session.id):
            what = f"{event.kind:<17} {event.action or '':<16} {event.outcome or ''}"
            print(f"audit: {event.seq:>2} {what}")
        print(f"audit chain verified: {cp.verify_audit(session.id).ok}")


if __name__ == "__main__":
    default = f"sqlite:///{Path(tempfile.mkdtemp()) / 'acp-example.db'}"
    main(sys.argv[1] if len(sys.argv) > 1 else default)
