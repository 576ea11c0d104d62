"""LangGraph adapter: approvals pause the graph in ACP, and the action runs exactly once."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, RetryPolicy

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ActionInProgressError, ConfigurationError
from agent_control_plane.integrations.langgraph import (
    ActionFailedBeforeError,
    agoverned_action,
    governed_action,
)
from agent_control_plane.models import Outcome
from tests.databases import TestDatabase

POLICY: dict[str, Any] = {
    "name": "langgraph",
    "tiers": {"always_approve": ["issue_refund"], "unrestricted": ["look_up_order"]},
}


class State(TypedDict, total=False):
    order: str
    looked_up: str
    refund: str
    refusal: str


class Ledger:
    """What the outside world saw: each real execution of an action."""

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.refunds: list[str] = []

    def look_up(self, order: str) -> str:
        self.lookups.append(order)
        return f"order {order}: 25.00"

    def refund(self, order: str) -> str:
        self.refunds.append(order)
        return f"refunded {order}"


def sync_graph(cp: ControlPlane, ledger: Ledger, saver: InMemorySaver) -> CompiledStateGraph[Any]:
    def refund_node(state: State) -> State:
        order = state["order"]
        # An auto-approved action before the approval: re-running the node must not repeat it.
        found = governed_action(cp, "look_up_order", lambda: ledger.look_up(order), cost="0.1")
        refund = governed_action(
            cp, "issue_refund", lambda: ledger.refund(order), args={"order": order}, cost="1"
        )
        if not refund.allowed:
            return {"looked_up": str(found.value), "refusal": str(refund.refusal)}
        return {"looked_up": str(found.value), "refund": str(refund.value)}

    builder = StateGraph(State)
    builder.add_node("refund", refund_node)
    builder.add_edge(START, "refund")
    builder.add_edge("refund", END)
    return builder.compile(checkpointer=saver)


def async_graph(
    acp: AsyncControlPlane, ledger: Ledger, saver: InMemorySaver
) -> CompiledStateGraph[Any]:
    async def refund_node(state: State) -> State:
        order = state["order"]

        async def refund() -> str:
            return ledger.refund(order)

        found = await agoverned_action(acp, "look_up_order", lambda: ledger.look_up(order))
        done = await agoverned_action(acp, "issue_refund", refund, args={"order": order}, cost="1")
        if not done.allowed:
            return {"looked_up": str(found.value), "refusal": str(done.refusal)}
        return {"looked_up": str(found.value), "refund": str(done.value)}

    builder = StateGraph(State)
    builder.add_node("refund", refund_node)
    builder.add_edge(START, "refund")
    builder.add_edge("refund", END)
    return builder.compile(checkpointer=saver)


def _config(session_id: uuid.UUID) -> Any:
    return {"configurable": {"thread_id": f"thread-{uuid.uuid4()}", "acp_session_id": session_id}}


def _ticket_of(result: dict[str, Any]) -> str:
    (pause,) = result["__interrupt__"]
    assert pause.value["action"] == "issue_refund"
    return str(pause.value["ticket_id"])


def _session(cp: ControlPlane) -> uuid.UUID:
    return cp.open_session(agent_id="graph", policy=POLICY, max_cost=10, max_actions=10).id


def test_approved_refund_runs_once_after_the_pause(control_plane: ControlPlane) -> None:
    cp, ledger, saver = control_plane, Ledger(), InMemorySaver()
    sid = _session(cp)
    graph, config = sync_graph(cp, ledger, saver), _config(sid)

    ticket = _ticket_of(graph.invoke({"order": "981"}, config))
    assert cp.get_ticket(ticket).pending
    assert (ledger.lookups, ledger.refunds) == (["981"], [])

    # Resumed before anyone decided: ACP still says pending, so the graph pauses again.
    again = graph.invoke(Command(resume="anyone there?"), config)
    assert _ticket_of(again) == ticket
    assert (ledger.lookups, ledger.refunds) == (["981"], [])

    cp.approve(ticket, "alice")
    done = graph.invoke(Command(resume="approved"), config)
    assert done["refund"] == "refunded 981"
    assert done["looked_up"] == "order 981: 25.00"
    assert (ledger.lookups, ledger.refunds) == (["981"], ["981"])
    assert cp.get_ticket(ticket).status == "consumed"
    session = cp.get_session(sid)
    assert (session.actions_used, session.cost_used) == (2, Decimal("1.1"))
    outcomes = [e for e in cp.events(sid) if e.kind == "outcome"]
    assert [(e.action, e.outcome) for e in outcomes] == [
        ("look_up_order", "succeeded"),
        ("issue_refund", "succeeded"),
    ]
    assert cp.verify_audit(sid).ok


def test_denied_refund_never_runs(control_plane: ControlPlane) -> None:
    cp, ledger, saver = control_plane, Ledger(), InMemorySaver()
    sid = _session(cp)
    graph, config = sync_graph(cp, ledger, saver), _config(sid)
    ticket = _ticket_of(graph.invoke({"order": "982"}, config))
    cp.deny(ticket, "bob", "order already refunded")

    done = graph.invoke(Command(resume="denied"), config)
    assert "refund" not in done
    assert f"approval.denied:{ticket}" in done["refusal"]
    assert ledger.refunds == []
    assert ledger.lookups == ["982"]
    assert cp.list_tickets(session_id=sid, status="pending").items == []
    assert cp.get_session(sid).actions_used == 1


def test_resume_after_a_restart_uses_acp_and_the_checkpointer(database: TestDatabase) -> None:
    saver, ledger = InMemorySaver(), Ledger()
    with ControlPlane.open(database.url_string) as cp:
        sid = _session(cp)
        config = _config(sid)
        ticket = _ticket_of(sync_graph(cp, ledger, saver).invoke({"order": "983"}, config))
    # The process that paused is gone; a person approves from another one.
    with ControlPlane.open(database.url_string) as operator:
        operator.approve(ticket, "carol")
    with ControlPlane.open(database.url_string) as cp:
        graph = sync_graph(cp, ledger, saver)  # a new graph object on the same checkpointer
        done = graph.invoke(Command(resume="go"), config)
        assert done["refund"] == "refunded 983"
        again = graph.invoke(Command(resume="go"), config)  # nothing left to resume
        assert again["refund"] == "refunded 983"
        assert (ledger.lookups, ledger.refunds) == (["983"], ["983"])
        assert cp.get_session(sid).actions_used == 2


def test_a_failing_action_is_recorded_as_failed(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)

    def node(state: State) -> State:
        def explode() -> str:
            raise RuntimeError("warehouse offline")

        governed_action(cp, "look_up_order", explode)
        return {}

    builder = StateGraph(State)
    builder.add_node("look", node)
    builder.add_edge(START, "look")
    graph = builder.compile(checkpointer=InMemorySaver())
    with pytest.raises(RuntimeError, match="warehouse offline"):
        graph.invoke({"order": "1"}, _config(sid))
    (outcome,) = [e for e in cp.events(sid) if e.kind == "outcome"]
    assert outcome.outcome == "failed"
    assert outcome.payload is not None
    assert "warehouse offline" in outcome.payload["result"]["error"]


def test_a_retried_node_does_not_repeat_its_action(control_plane: ControlPlane) -> None:
    cp, ledger = control_plane, Ledger()
    sid = _session(cp)
    attempts: list[bool] = []

    def node(state: State) -> State:
        found = governed_action(cp, "look_up_order", lambda: ledger.look_up(state["order"]))
        attempts.append(found.replayed)
        if len(attempts) == 1:
            raise TimeoutError("the next step timed out")  # LangGraph's retry policy re-runs
        return {"looked_up": str(found.value)}

    builder = StateGraph(State)
    retry = RetryPolicy(max_attempts=2, initial_interval=0.01, retry_on=TimeoutError)
    builder.add_node("look", node, retry_policy=retry)
    builder.add_edge(START, "look")
    graph = builder.compile(checkpointer=InMemorySaver())
    done = graph.invoke({"order": "7"}, _config(sid))
    assert done["looked_up"] == "order 7: 25.00"
    assert (attempts, ledger.lookups) == ([False, True], ["7"])
    assert cp.get_session(sid).actions_used == 1


def test_a_failed_action_is_not_run_again_by_a_retry(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = _session(cp)
    runs: list[int] = []

    def node(state: State) -> State:
        def fail() -> str:
            runs.append(1)
            raise TimeoutError("warehouse timed out")

        governed_action(cp, "look_up_order", fail)
        return {}

    builder = StateGraph(State)
    retry = RetryPolicy(max_attempts=2, initial_interval=0.01, retry_on=TimeoutError)
    builder.add_node("look", node, retry_policy=retry)
    builder.add_edge(START, "look")
    with pytest.raises(ActionFailedBeforeError, match="warehouse timed out"):
        builder.compile(checkpointer=InMemorySaver()).invoke({"order": "8"}, _config(sid))
    assert runs == [1]
    assert cp.get_session(sid).actions_used == 1


def test_a_graph_without_a_session_or_thread_is_refused(control_plane: ControlPlane) -> None:
    cp = control_plane

    def node(state: State) -> State:
        governed_action(cp, "look_up_order", lambda: "x")
        return {}

    builder = StateGraph(State)
    builder.add_node("look", node)
    builder.add_edge(START, "look")
    with pytest.raises(ConfigurationError, match="acp_session_id"):
        builder.compile(checkpointer=InMemorySaver()).invoke(
            {"order": "1"}, {"configurable": {"thread_id": "t"}}
        )
    with pytest.raises(ConfigurationError, match="thread_id"):
        builder.compile().invoke({"order": "1"})


async def test_async_approve_and_deny(async_control_plane: AsyncControlPlane) -> None:
    acp, ledger, saver = async_control_plane, Ledger(), InMemorySaver()
    graph = async_graph(acp, ledger, saver)

    approved_sid = (
        await acp.open_session(agent_id="g", policy=POLICY, max_cost=9, max_actions=9)
    ).id
    approved = _config(approved_sid)
    ticket = _ticket_of(await graph.ainvoke({"order": "984"}, approved))
    assert _ticket_of(await graph.ainvoke(Command(resume="?"), approved)) == ticket
    await acp.approve(ticket, "alice")
    done = await graph.ainvoke(Command(resume="ok"), approved)
    assert done["refund"] == "refunded 984"

    denied_sid = (await acp.open_session(agent_id="g", policy=POLICY, max_cost=9, max_actions=9)).id
    denied = _config(denied_sid)
    other = _ticket_of(await graph.ainvoke({"order": "985"}, denied))
    await acp.deny(other, "bob", "no")
    refused = await graph.ainvoke(Command(resume="ok"), denied)
    assert f"approval.denied:{other}" in refused["refusal"]

    assert ledger.refunds == ["984"]
    assert ledger.lookups == ["984", "985"]
    decision = await acp.govern(approved_sid, "issue_refund", args={"order": "984"}, cost="1")
    assert decision.outcome is Outcome.NEEDS_APPROVAL  # the approval was used up by the graph


async def test_a_cancelled_action_is_recorded_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = (await acp.open_session(agent_id="g", policy=POLICY, max_cost=9, max_actions=9)).id

    async def node(state: State) -> State:
        async def slow() -> str:
            await asyncio.sleep(30)
            return "too late"

        await agoverned_action(acp, "look_up_order", slow)
        return {}

    builder = StateGraph(State)
    builder.add_node("look", node)
    builder.add_edge(START, "look")
    graph = builder.compile(checkpointer=InMemorySaver())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(graph.ainvoke({"order": "1"}, _config(sid)), timeout=1.0)
    (outcome,) = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert outcome.outcome == "cancelled"


# -- two processes resume the same approved thread at the same moment -------------------

ROUNDS = 20
PAYMENT_SECONDS = 0.3


class PayState(TypedDict, total=False):
    order: str
    paid: str


def payment_graph(cp: ControlPlane, saver: BaseCheckpointSaver[Any], paid: list[str]) -> Any:
    def pay_node(state: PayState) -> PayState:
        order = state["order"]

        def pay() -> str:
            time.sleep(PAYMENT_SECONDS)  # the payment provider takes its time
            paid.append(order)
            return f"paid {order}"

        done = governed_action(cp, "issue_refund", pay, args={"order": order}, cost="1")
        return {"paid": str(done.value) if done.allowed else str(done.refusal)}

    builder = StateGraph(PayState)
    builder.add_node("pay", pay_node)
    builder.add_edge(START, "pay")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


def _resumer(url: str, checkpoints: str, jobs: Any, results: Any, barrier: Any) -> None:
    """One process: resume each thread it is sent at the same moment as its twin."""
    paid: list[str] = []
    with (
        ControlPlane.open(url, migrate="off") as cp,
        SqliteSaver.from_conn_string(checkpoints) as saver,
    ):
        graph = payment_graph(cp, saver, paid)
        while (job := jobs.get()) is not None:
            config = {"configurable": {"thread_id": job[0], "acp_session_id": job[1]}}
            before = len(paid)
            barrier.wait()
            try:
                state = graph.invoke(Command(resume="approved"), config)
                answer = str(state.get("paid"))
            except Exception as error:
                answer = f"{type(error).__name__}: {error}"
            results.put((job[0], len(paid) - before, answer))


@pytest.mark.slow
def test_concurrent_resumes_of_one_approved_thread_pay_once(
    database: TestDatabase, tmp_path: Path
) -> None:
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    queues = [context.Queue(), context.Queue()]
    with (
        ControlPlane.open(database.url_string) as cp,
        SqliteSaver.from_conn_string(checkpoints) as saver,
    ):
        graph = payment_graph(cp, saver, [])
        workers = [
            context.Process(
                target=_resumer, args=(database.url_string, checkpoints, q, results, barrier)
            )
            for q in queues
        ]
        for worker in workers:
            worker.start()
        try:
            runs: dict[str, int] = {}
            answers: dict[str, list[str]] = {}
            sessions: dict[str, uuid.UUID] = {}
            for round_ in range(ROUNDS):
                sid = _session(cp)
                thread = f"pay-{round_}-{uuid.uuid4()}"
                config: Any = {"configurable": {"thread_id": thread, "acp_session_id": sid}}
                ticket = _ticket_of(graph.invoke({"order": str(round_)}, config))
                cp.approve(ticket, "alice")
                for q in queues:
                    q.put((thread, str(sid)))
                for _ in queues:
                    done_thread, ran, answer = results.get(timeout=60)
                    runs[done_thread] = runs.get(done_thread, 0) + ran
                    answers.setdefault(done_thread, []).append(answer)
                sessions[thread] = sid
        finally:
            for q in queues:
                q.put(None)
            for worker in workers:
                worker.join(timeout=60)
        doubles = [thread for thread, ran in runs.items() if ran != 1]
        assert doubles == [], f"{len(doubles)} of {ROUNDS} rounds paid {runs}"
        for thread, sid in sessions.items():
            order = thread.split("-")[1]
            assert answers[thread] == [f"paid {order}"] * 2  # the loser got the recorded result
            decisions = [
                e for e in cp.events(sid) if e.kind == "decision" and e.outcome == "allowed"
            ]
            outcomes = [e for e in cp.events(sid) if e.kind == "outcome"]
            assert (len(decisions), len(outcomes)) == (1, 1)
            assert cp.get_session(sid).actions_used == 1


def test_a_claim_whose_claimant_stopped_is_reported_not_run_again(
    control_plane: ControlPlane,
) -> None:
    cp, ledger = control_plane, Ledger()
    sid = _session(cp)

    def node(state: State) -> State:
        done = governed_action(
            cp, "look_up_order", lambda: ledger.look_up("9"), key="look-9", wait=0.2
        )
        return {"looked_up": str(done.value)}

    builder = StateGraph(State)
    builder.add_node("look", node)
    builder.add_edge(START, "look")
    graph = builder.compile(checkpointer=InMemorySaver())
    # An execution claimed the lookup, then its process died before recording an outcome.
    claimed = cp.govern(sid, "look_up_order", cost=0, idempotency_key="look-9", claim=True)
    assert claimed.claimed
    with pytest.raises(ActionInProgressError, match="outcome is unknown"):
        graph.invoke({"order": "9"}, _config(sid))
    assert ledger.lookups == []
    # A person checks the warehouse and records what happened: the node now replays it.
    cp.record_outcome(claimed, "succeeded", result={"value": "order 9: 25.00"})
    assert graph.invoke({"order": "9"}, _config(sid))["looked_up"] == "order 9: 25.00"
    assert ledger.lookups == []
    assert cp.get_session(sid).actions_used == 1
