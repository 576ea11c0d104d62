"""A LangGraph node that needs a person's approval, with the pause kept in ACP.

The graph pauses with the ACP ticket id, the process "restarts" (a new control plane and
a new graph object on the same checkpointer and database), a person approves the ticket
in ACP, and the resumed graph runs the refund exactly once. A second thread is denied.

    python examples/langgraph_approval.py [DATABASE_URL]
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from agent_control_plane import ControlPlane
from agent_control_plane.integrations.langgraph import governed_action

POLICY: dict[str, Any] = {
    "name": "refunds",
    "tiers": {"unrestricted": ["look_up_order"], "always_approve": ["issue_refund"]},
}

refunds_paid: list[str] = []


class State(TypedDict, total=False):
    order: str
    summary: str


def build_graph(cp: ControlPlane, checkpointer: InMemorySaver) -> CompiledStateGraph[Any]:
    def refund(state: State) -> State:
        order = state["order"]
        # Runs once: when LangGraph re-runs this node on resume, the recorded result is reused.
        found = governed_action(cp, "look_up_order", lambda: f"order {order}: 25.00 USD")

        def pay() -> str:
            refunds_paid.append(order)
            return f"refunded 25.00 USD on order {order}"

        # Claimed in ACP when it is decided: two processes resuming this thread at the same
        # moment pay once; the other one returns the recorded result.
        paid = governed_action(cp, "issue_refund", pay, args={"order": order}, cost="25")
        return {"summary": f"{found.value}; {paid.value if paid.allowed else paid.refusal}"}

    builder = StateGraph(State)
    builder.add_node("refund", refund)
    builder.add_edge(START, "refund")
    builder.add_edge("refund", END)
    return builder.compile(checkpointer=checkpointer)


def main(url: str) -> None:
    checkpointer = InMemorySaver()  # use a durable checkpointer in production
    threads: dict[str, tuple[RunnableConfig, str]] = {}
    with ControlPlane.open(url) as cp:
        for order in ("981", "982"):
            session = cp.open_session(
                agent_id="refund-graph", policy=POLICY, max_cost=100, max_actions=10
            )
            config: RunnableConfig = {
                "configurable": {
                    "thread_id": f"refund-{order}-{uuid.uuid4()}",
                    "acp_session_id": session.id,
                }
            }
            paused = build_graph(cp, checkpointer).invoke({"order": order}, config)
            (pause,) = paused["__interrupt__"]
            threads[order] = (config, pause.value["ticket_id"])
            print(f"order {order}: paused for approval, ticket {pause.value['ticket_id']}")
    print("--- the process restarts; a person decides in ACP ---")
    with ControlPlane.open(url) as operator:
        operator.approve(threads["981"][1], "alice", reason="customer is verified")
        operator.deny(threads["982"][1], "bob", reason="refunded last week already")
    with ControlPlane.open(url) as cp:
        graph = build_graph(cp, checkpointer)  # a new graph object on the same checkpointer
        for order, (config, ticket) in threads.items():
            done = graph.invoke(Command(resume="decided"), config)
            print(f"order {order}: {done['summary']}")
            print(f"order {order}: ticket is {cp.get_ticket(ticket).status}")
            again = graph.invoke(Command(resume="decided"), config)  # nothing runs twice
            assert again["summary"] == done["summary"]
    print(f"refunds paid: {refunds_paid}")


if __name__ == "__main__":
    default = f"sqlite:///{Path(tempfile.mkdtemp()) / 'acp-example.db'}"
    main(sys.argv[1] if len(sys.argv) > 1 else default)
