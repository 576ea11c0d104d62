"""OpenAI Agents SDK: every path an agent acts through governed by ACP, or refused.

``AgentGovernance(cp, session_id).agent(agent)`` returns a copy of the agent on which:

- every function tool, and every tool of its MCP servers (``mcp_servers=[...]``), is
  decided by ``govern`` before it runs, in a tool input guardrail; a refusal either goes
  back to the model as the tool's output (``on_refusal="reject"``, the default) or stops
  the run with the SDK's ``ToolInputGuardrailTripwireTriggered`` (``on_refusal="stop"``).
  What the tool then did is recorded with ``record_outcome``: succeeded, failed (an
  exception) or cancelled (a timeout or cancellation).
- a call that needs a person's approval is refused with the ticket named, or, with
  ``approvals="native"``, interrupts the run through the SDK's own ``needs_approval``:
  ``resolve_interruptions(state)`` applies ACP's ticket and the resumed run performs the
  call once.
- each model call is checked against ACP's token budgets before it is made and its usage
  recorded after it, by hooks on the agent itself (whatever hooks ``Runner.run`` gets).
- the agents it hands off to are governed copies too; hosted tools (which run on the
  model provider's side) and agents used as tools that are not governed are refused with
  ConfigurationError when the agent is wired.
"""

from __future__ import annotations

from agent_control_plane.integrations.openai_agents.governance import (
    AgentGovernance,
    Approvals,
    Refusal,
)
from agent_control_plane.integrations.openai_agents.wiring import GovernedAgent
from agent_control_plane.integrations.refusals import refusal_message

__all__ = ["AgentGovernance", "Approvals", "GovernedAgent", "Refusal", "refusal_message"]
