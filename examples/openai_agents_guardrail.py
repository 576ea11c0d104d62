"""An OpenAI Agents SDK agent under ACP: tool calls governed, model tokens budgeted.

Runs offline: a scripted model stands in for OpenAI (no network, no API key).

    python examples/openai_agents_guardrail.py [DATABASE_URL]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import agents
from agents import Agent, Runner, function_tool

from agent_control_plane import AsyncControlPlane
from agent_control_plane.errors import TokenBudgetExhausted
from agent_control_plane.integrations.openai_agents import AgentGovernance
from agent_control_plane.integrations.scripted_model import ScriptedModel, message, tool_call
from agent_control_plane.rules.tokens import Identity

POLICY: dict[str, Any] = {
    "name": "support-bot",
    "default": "deny",
    "tiers": {"unrestricted": ["look_up_order"], "blocked": ["delete_customer"]},
}

deleted: list[str] = []


@function_tool
def look_up_order(order: str) -> str:
    """Look an order up."""
    return f"order {order}: 25.00 USD, shipped"


@function_tool
def delete_customer(customer: str) -> str:
    """Delete a customer's account."""
    deleted.append(customer)
    return f"deleted {customer}"


async def main(url: str) -> None:
    agents.set_tracing_disabled(True)
    os.environ.setdefault("OPENAI_API_KEY", "sk-offline-example")
    async with await AsyncControlPlane.open(url) as acp:
        acp.set_prices({"gpt-4o-mini": {"input": "0.15", "output": "0.60"}})
        session = await acp.open_session(
            "ticket-4711",
            agent_id="support-bot",
            tenant="acme",
            policy=POLICY,
            max_cost="5.00",
            max_actions=20,
        )
        await acp.set_token_budget(Identity(org="acme", agent="support-bot"), "day", max_tokens=500)
        governance = AgentGovernance(acp, session.id, model="gpt-4o-mini")

        model = ScriptedModel(
            [
                [
                    tool_call("look_up_order", "call_1", order="981"),
                    tool_call("delete_customer", "call_2", customer="c-42"),
                ],
                [message("Order 981 has shipped. I may not delete accounts.")],
            ],
            input_tokens=150,
            output_tokens=30,
        )
        agent = Agent(name="support", model=model, tools=[look_up_order, delete_customer])
        result = await Runner.run(governance.agent(agent), "Where is order 981? And delete me.")
        for output in model.tool_outputs():
            print(f"tool output shown to the model: {output}")
        print(f"agent: {result.final_output}")
        print(f"delete_customer ran {len(deleted)} times")

        (usage,) = await acp.token_usage(group_by=["agent"])
        print(f"tokens used: {usage['total_tokens']} in {usage['requests']} model calls")

        # 360 of 500 tokens used: the next run's first call takes the day to 540.
        busy = ScriptedModel([[message("Hello again.")]], input_tokens=150, output_tokens=30)
        again = Agent(name="support", model=busy, tools=[look_up_order])
        try:
            await Runner.run(governance.agent(again), "Hi")
        except TokenBudgetExhausted:
            print("second run stopped: token budget exhausted")
        try:
            await Runner.run(governance.agent(again), "Hi?")
        except TokenBudgetExhausted:
            print("third run refused before calling the model")

        for event in await acp.events(session.id):
            what = f"{event.kind:<10} {event.action or '':<16} {event.outcome or ''}"
            print(f"audit: {event.seq:>2} {what}")
        print(f"audit chain verified: {(await acp.verify_audit(session.id)).ok}")


if __name__ == "__main__":
    default = f"sqlite:///{Path(tempfile.mkdtemp()) / 'acp-example.db'}"
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else default))
