"""LangChain agents: GovernanceMiddleware governs every tool call of create_agent.

Each tool appends to a list when its body runs: a refused call leaves no trace there.
The model is LangChain's own fake chat model playing a script (no network).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ToolRetryMiddleware
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError, TokenBudgetExhausted
from agent_control_plane.integrations.langchain import GovernanceMiddleware
from agent_control_plane.rules.tokens import Identity
from tests.langchain_helpers import ScriptedChatModel, turn

POLICY: dict[str, Any] = {
    "name": "langchain",
    "tiers": {
        "unrestricted": ["look_up_order", "flaky_lookup", "fragile_lookup", "slow_lookup"],
        "blocked": ["delete_customer"],
        "always_approve": ["issue_refund"],
    },
}
PRICES = {"gpt-test": {"input": "1", "output": "2"}}
USER: Any = {"messages": [{"role": "user", "content": "help with order 981"}]}


class World:
    """What the tools really did."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.deleted: list[str] = []
        self.refunded: list[str] = []
        self._lock = threading.Lock()

    def tools(self, refund_seconds: float = 0) -> list[BaseTool]:
        @tool
        def look_up_order(order: str) -> str:
            """Look an order up."""
            self.looked_up.append(order)
            return f"order {order}: 25.00 USD"

        @tool
        def delete_customer(customer: str) -> str:
            """Delete a customer."""
            self.deleted.append(customer)
            return "deleted"

        @tool
        def issue_refund(order: str) -> str:
            """Refund an order."""
            time.sleep(refund_seconds)  # the payment provider takes its time
            with self._lock:
                self.refunded.append(order)
            return f"refunded order {order}"

        @tool
        def flaky_lookup(order: str) -> str:
            """Fail with an exception the agent does not handle."""
            raise RuntimeError("warehouse offline")

        @tool
        def fragile_lookup(order: str) -> str:
            """Fail with an error the tool reports to the model."""
            raise ToolException("warehouse busy, try later")

        fragile_lookup.handle_tool_error = True  # the tool turns its error into a message

        @tool
        async def slow_lookup(order: str) -> str:
            """Take a long time."""
            await asyncio.sleep(30)
            return "too late"

        return [
            look_up_order,
            delete_customer,
            issue_refund,
            flaky_lookup,
            fragile_lookup,
            slow_lookup,
        ]


def _agent(
    cp: ControlPlane | AsyncControlPlane,
    world: World,
    chat: ScriptedChatModel,
    session_id: uuid.UUID | None,
    checkpointer: Any = None,
    **options: Any,
) -> Any:
    middleware = GovernanceMiddleware(cp, session_id, **options)
    return create_agent(
        chat, tools=world.tools(), middleware=[middleware], checkpointer=checkpointer
    )


def _thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"thread-{uuid.uuid4()}"}}


def _session(cp: ControlPlane) -> uuid.UUID:
    return cp.open_session(agent_id="lc-bot", policy=POLICY, max_cost=10, max_actions=10).id


def _trail(cp: ControlPlane, sid: uuid.UUID) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.action, e.outcome) for e in cp.events(sid) if e.kind != "session.opened"]


def _refund_script(text: str = "Refunded.") -> ScriptedChatModel:
    return ScriptedChatModel.of([turn(("issue_refund", "call_1", {"order": "981"})), text])


def test_an_allowed_call_is_charged_then_recorded(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = ScriptedChatModel.of(
        [turn(("look_up_order", "call_1", {"order": "981"})), "Order 981 is 25 USD."]
    )
    done = _agent(cp, world, model, sid).invoke(USER)

    assert done["messages"][-1].content == "Order 981 is 25 USD."
    assert world.looked_up == ["981"]
    (shown,) = model.tool_messages()
    assert (shown.content, shown.status) == ("order 981: 25.00 USD", "success")
    assert _trail(cp, sid) == [
        ("decision", "look_up_order", "allowed"),
        ("outcome", "look_up_order", "succeeded"),
    ]
    assert cp.get_session(sid).actions_used == 1
    assert cp.verify_audit(sid).ok


def test_a_blocked_call_never_runs_and_the_model_reads_why(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = ScriptedChatModel.of(
        [turn(("delete_customer", "call_1", {"customer": "c-7"})), "I cannot do that."]
    )
    _agent(cp, world, model, sid).invoke(USER)

    assert world.deleted == []
    (shown,) = model.tool_messages()
    assert shown.status == "error"
    assert "refused delete_customer (denied: tier.blocked:delete_customer)" in str(shown.content)
    assert _trail(cp, sid) == [("decision", "delete_customer", "denied")]
    assert cp.get_session(sid).actions_used == 0


def test_failures_are_recorded_failed(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    # An error the tool reports (handle_tool_error): the model reads it, ACP says failed.
    model = ScriptedChatModel.of([turn(("fragile_lookup", "call_1", {"order": "1"})), "Sorry."])
    _agent(cp, world, model, sid).invoke(USER)
    (shown,) = model.tool_messages()
    assert (shown.content, shown.status) == ("warehouse busy, try later", "error")
    # An exception nobody handles: it ends the run, and ACP still says failed.
    model = ScriptedChatModel.of([turn(("flaky_lookup", "call_2", {"order": "2"})), "Sorry."])
    with pytest.raises(RuntimeError, match="warehouse offline"):
        _agent(cp, world, model, sid).invoke(USER)

    outcomes = [e for e in cp.events(sid) if e.kind == "outcome"]
    assert [(e.action, e.outcome) for e in outcomes] == [
        ("fragile_lookup", "failed"),
        ("flaky_lookup", "failed"),
    ]
    assert "warehouse offline" in str(outcomes[1].payload)
    assert cp.get_session(sid).actions_used == 2


async def test_a_cancelled_call_is_recorded_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp, world = async_control_plane, World()
    sid = (await acp.open_session(agent_id="lc", policy=POLICY, max_cost=9, max_actions=9)).id
    model = ScriptedChatModel.of([turn(("slow_lookup", "call_1", {"order": "3"})), "late"])
    agent = _agent(acp, world, model, sid)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agent.ainvoke(USER), timeout=1.0)
    (outcome,) = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert (outcome.action, outcome.outcome) == ("slow_lookup", "cancelled")


def test_an_approval_interrupts_and_acps_ticket_decides(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    agent = _agent(cp, world, _refund_script(), sid, InMemorySaver())
    config = _thread()

    paused = agent.invoke(USER, config)
    (pause,) = paused["__interrupt__"]
    assert pause.value["type"] == "acp_approval"
    assert (pause.value["name"], pause.value["args"]) == ("issue_refund", {"order": "981"})
    ticket = pause.value["ticket_id"]
    assert cp.get_ticket(ticket).pending

    # A resume that says "approve" while ACP's ticket is pending runs nothing.
    again = agent.invoke(Command(resume={"type": "approve"}), config)
    (still,) = again["__interrupt__"]
    assert still.value["ticket_id"] == ticket
    assert world.refunded == []

    cp.approve(ticket, "alice")
    done = agent.invoke(Command(resume={"type": "approve"}), config)
    assert done["messages"][-1].content == "Refunded."
    assert world.refunded == ["981"]
    assert cp.get_ticket(ticket).status == "consumed"
    # Nothing left to resume: the refund is not paid twice.
    agent.invoke(Command(resume={"type": "approve"}), config)
    assert world.refunded == ["981"]
    assert _trail(cp, sid) == [
        ("decision", "issue_refund", "needs_approval"),
        ("decision", "issue_refund", "needs_approval"),  # asked again on the early resume
        ("approval.approved", "issue_refund", "approved"),
        ("decision", "issue_refund", "allowed"),
        ("outcome", "issue_refund", "succeeded"),
    ]
    assert cp.get_session(sid).actions_used == 1


def test_a_denied_ticket_refuses_the_resumed_call(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = _refund_script("The refund was refused.")
    agent = _agent(cp, world, model, sid, InMemorySaver())
    config = _thread()
    ticket = agent.invoke(USER, config)["__interrupt__"][0].value["ticket_id"]
    cp.deny(ticket, "bob", "already refunded")

    done = agent.invoke(Command(resume={"type": "approve"}), config)
    assert done["messages"][-1].content == "The refund was refused."
    assert world.refunded == []
    (shown,) = model.tool_messages()
    assert f"approval.denied:{ticket}" in str(shown.content)
    assert cp.get_session(sid).actions_used == 0


def test_a_call_that_failed_is_not_run_again_by_a_resume(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    attempts: list[str] = []

    @tool
    def issue_refund(order: str) -> str:
        """Refund an order."""
        attempts.append(order)
        raise RuntimeError("payment provider unreachable")

    model = ScriptedChatModel.of([turn(("issue_refund", "call_1", {"order": "981"})), "Sorry."])
    agent: Any = create_agent(
        model,
        tools=[issue_refund],
        middleware=[GovernanceMiddleware(cp, sid)],
        checkpointer=InMemorySaver(),
    )
    config = _thread()
    ticket = agent.invoke(USER, config)["__interrupt__"][0].value["ticket_id"]
    cp.approve(ticket, "alice")
    with pytest.raises(RuntimeError, match="payment provider unreachable"):
        agent.invoke(Command(resume="approved"), config)
    # Run again from the same checkpoint: the claimed, failed call is not paid twice.
    done = agent.invoke(Command(resume="approved"), config)
    assert attempts == ["981"]
    assert done["messages"][-1].content == "Sorry."
    (shown,) = model.tool_messages()
    assert shown.status == "error"
    assert "issue_refund failed in an earlier execution" in str(shown.content)
    assert [e.outcome for e in cp.events(sid) if e.kind == "outcome"] == ["failed"]


@pytest.mark.parametrize("retry_inside", [True, False])
def test_a_retry_middleware_retries_under_one_decision_or_not_at_all(
    control_plane: ControlPlane, retry_inside: bool
) -> None:
    cp = control_plane
    sid = _session(cp)
    attempts: list[str] = []

    @tool
    def look_up_order(order: str) -> str:
        """Look an order up; the warehouse answers the second time."""
        attempts.append(order)
        if len(attempts) == 1:
            raise TimeoutError("warehouse timed out")
        return f"order {order}: 25.00 USD"

    retry = ToolRetryMiddleware(max_retries=2, initial_delay=0, jitter=False)
    governance = GovernanceMiddleware(cp, sid)
    middleware = [governance, retry] if retry_inside else [retry, governance]
    model = ScriptedChatModel.of([turn(("look_up_order", "call_1", {"order": "5"})), "ok"])
    create_agent(model, tools=[look_up_order], middleware=middleware).invoke(USER)

    (shown,) = model.tool_messages()
    outcomes = [e.outcome for e in cp.events(sid) if e.kind == "outcome"]
    if retry_inside:  # retried under ACP's one decision: charged once, succeeded
        assert (attempts, shown.content, outcomes) == (
            ["5", "5"],
            "order 5: 25.00 USD",
            ["succeeded"],
        )
    else:  # each retry finds the recorded failure: not run again under that decision
        assert (attempts, outcomes) == (["5"], ["failed"])
        assert "failed in an earlier execution" in str(shown.content)
    assert cp.get_session(sid).actions_used == 1


def test_model_approvals_refuse_then_run_when_asked_again(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    refund = ("issue_refund", "call_1", {"order": "981"})
    model = ScriptedChatModel.of([turn(refund), "Waiting for approval."])
    _agent(cp, world, model, sid, approvals="model").invoke(USER)
    (shown,) = model.tool_messages()
    (ticket,) = cp.list_tickets(session_id=sid, status="pending").items
    assert f"A person must approve it first (ticket {ticket.id})" in str(shown.content)
    assert world.refunded == []

    cp.approve(ticket.id, "alice")
    model = ScriptedChatModel.of([turn(refund), "Refunded."])  # the model asks again
    _agent(cp, world, model, sid, approvals="model").invoke(USER)
    assert world.refunded == ["981"]
    assert cp.get_ticket(ticket.id).status == "consumed"


def test_without_a_checkpointer_an_approval_is_refused_naming_the_ticket(
    control_plane: ControlPlane,
) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = _refund_script("Waiting.")
    _agent(cp, world, model, sid).invoke(USER)  # nothing could resume it
    (shown,) = model.tool_messages()
    (ticket,) = cp.list_tickets(session_id=sid, status="pending").items
    assert f"ticket {ticket.id}" in str(shown.content)
    assert world.refunded == []


def test_reused_call_ids_are_each_governed(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    same = ("look_up_order", "call_0", {"order": "981"})
    delete = ("delete_customer", "call_0", {"customer": "c-7"})
    model = ScriptedChatModel.of([turn(same), turn(same), turn(delete), "done"])
    _agent(cp, world, model, sid, InMemorySaver()).invoke(USER, _thread())
    # Two model turns asked the same thing under the same id: two calls, two charges.
    assert world.looked_up == ["981", "981"]
    assert world.deleted == []
    decisions = [(e.action, e.outcome) for e in cp.events(sid) if e.kind == "decision"]
    assert decisions == [
        ("look_up_order", "allowed"),
        ("look_up_order", "allowed"),
        ("delete_customer", "denied"),
    ]
    assert cp.get_session(sid).actions_used == 2


def test_model_calls_are_checked_against_token_budgets(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    cp.set_prices(PRICES)
    sid = _session(cp)
    cp.set_token_budget(Identity(agent="lc-bot"), "day", max_tokens=300)
    look = turn(("look_up_order", "call_1", {"order": "981"}))
    model = ScriptedChatModel.of([look, "Order 981 is 25 USD."], usage=(100, 20))
    _agent(cp, world, model, sid, model="gpt-test").invoke(USER)
    (used,) = cp.token_usage(group_by=["agent"])
    assert (used["total_tokens"], used["requests"]) == (240, 2)

    # 240 of 300: the next call is made, and its usage takes the day past the limit.
    model = ScriptedChatModel.of(["Hello again.", "unused"], usage=(100, 20))
    with pytest.raises(TokenBudgetExhausted):
        _agent(cp, world, model, sid, model="gpt-test").invoke(USER)
    assert len(model.seen) == 1
    # Now spent: refused before the model is called.
    model = ScriptedChatModel.of(["Hi?"], usage=(100, 20))
    with pytest.raises(TokenBudgetExhausted):
        _agent(cp, world, model, sid, model="gpt-test").invoke(USER)
    assert model.seen == []
    assert cp.token_usage(group_by=["agent"])[0]["total_tokens"] == 360


async def test_async_model_calls_are_recorded(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    acp.set_prices(PRICES)
    sid = (await acp.open_session(agent_id="lc", policy=POLICY, max_cost=9, max_actions=9)).id
    model = ScriptedChatModel.of(["Nothing to do."], usage=(50, 5))
    await _agent(acp, world, model, sid, model="gpt-test").ainvoke(USER)
    (used,) = await acp.token_usage(group_by=["agent"])
    assert (used["total_tokens"], used["requests"]) == (55, 1)


def test_the_session_can_come_from_the_agents_config(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    model = ScriptedChatModel.of([turn(("look_up_order", "call_1", {"order": "5"})), "ok"])
    agent = _agent(cp, world, model, None)
    agent.invoke(USER, {"configurable": {"acp_session_id": str(sid)}})
    assert cp.get_session(sid).actions_used == 1

    model = ScriptedChatModel.of([turn(("look_up_order", "call_1", {"order": "6"})), "ok"])
    with pytest.raises(ConfigurationError, match="acp_session_id"):
        _agent(cp, world, model, None).invoke(USER)
    assert world.looked_up == ["5"]


async def test_async_agent_approve_and_deny(async_control_plane: AsyncControlPlane) -> None:
    acp, world = async_control_plane, World()
    for answer in ("approve", "deny"):
        sid = (await acp.open_session(agent_id="lc", policy=POLICY, max_cost=9, max_actions=9)).id
        agent = _agent(acp, world, _refund_script("ok"), sid, InMemorySaver())
        config = _thread()
        ticket = (await agent.ainvoke(USER, config))["__interrupt__"][0].value["ticket_id"]
        again = await agent.ainvoke(Command(resume="approve"), config)
        assert again["__interrupt__"][0].value["ticket_id"] == ticket
        if answer == "approve":
            await acp.approve(ticket, "alice")
        else:
            await acp.deny(ticket, "bob", "no")
        await agent.ainvoke(Command(resume="approve"), config)
    assert world.refunded == ["981"]


async def test_a_sync_control_plane_serves_ainvoke(control_plane: ControlPlane) -> None:
    cp, world = control_plane, World()
    sid = _session(cp)
    look = ("look_up_order", "c1", {"order": "7"})
    delete = ("delete_customer", "c2", {"customer": "c"})
    model = ScriptedChatModel.of([turn(look, delete), "ok"])
    await _agent(cp, world, model, sid).ainvoke(USER)
    assert (world.looked_up, world.deleted) == (["7"], [])
    decisions = {e.action: e.outcome for e in cp.events(sid) if e.kind == "decision"}
    assert decisions == {"look_up_order": "allowed", "delete_customer": "denied"}


def test_an_async_control_plane_refuses_invoke_clearly(tmp_path: Path) -> None:
    async def opened() -> AsyncControlPlane:
        return await AsyncControlPlane.open(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")

    acp = asyncio.run(opened())
    try:
        world = World()
        model = ScriptedChatModel.of([turn(("look_up_order", "c1", {"order": "7"})), "ok"])
        with pytest.raises(ConfigurationError, match="ainvoke"):
            _agent(acp, world, model, uuid.uuid4()).invoke(USER)
        assert world.looked_up == []
    finally:
        asyncio.run(acp.close())


# -- two executions resume the same approved checkpoint at the same moment -------------


def _resume(agent: Any, config: Any, barrier: threading.Barrier, shown: list[Any]) -> None:
    barrier.wait()
    state = agent.invoke(Command(resume="approved"), config)
    shown.append([m for m in state["messages"] if isinstance(m, ToolMessage)])


ROUNDS = 8
REFUND_SECONDS = 0.3


def test_concurrent_resumes_of_one_approved_call_run_it_once(
    two_control_planes: tuple[ControlPlane, ControlPlane], tmp_path: Path
) -> None:
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    first, second = two_control_planes
    world = World()
    with (
        SqliteSaver.from_conn_string(checkpoints) as saver_one,
        SqliteSaver.from_conn_string(checkpoints) as saver_two,
    ):
        savers = {id(first): saver_one, id(second): saver_two}

        def agent(cp: ControlPlane, sid: uuid.UUID, *script: Any) -> Any:
            model = ScriptedChatModel.of(script)
            middleware = GovernanceMiddleware(cp, sid)
            return create_agent(
                model,
                tools=world.tools(refund_seconds=REFUND_SECONDS),
                middleware=[middleware],
                checkpointer=savers[id(cp)],
            )

        for _ in range(ROUNDS):
            sid = _session(first)
            config = _thread()
            refund = turn(("issue_refund", "call_1", {"order": "9"}))
            paused = agent(first, sid, refund).invoke(USER, config)
            ticket = paused["__interrupt__"][0].value["ticket_id"]
            first.approve(ticket, "alice")
            before = len(world.refunded)
            barrier = threading.Barrier(2)
            shown: list[Any] = []
            # Each resumes with its own ACP connection and agent; the model's next answer.
            resumers = [agent(cp, sid, "Refunded.") for cp in (first, second)]
            threads = [
                threading.Thread(target=_resume, args=(resumer, config, barrier, shown))
                for resumer in resumers
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert len(world.refunded) - before == 1, "the refund was paid twice"
            # The execution that did not run it read the recorded result.
            assert [[m.content for m in messages] for messages in shown] == [
                ["refunded order 9"],
                ["refunded order 9"],
            ]
            decisions = [e for e in first.events(sid) if e.kind == "decision"]
            outcomes = [e for e in first.events(sid) if e.kind == "outcome"]
            assert [d.outcome for d in decisions] == ["needs_approval", "allowed"]
            assert len(outcomes) == 1
            assert first.get_session(sid).actions_used == 1
    assert world.refunded == ["9"] * ROUNDS
