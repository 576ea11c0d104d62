"""Govern an action, run it at most once, record how it ended: the one flow that adapters
whose runs are resumed (LangGraph nodes, LangChain agents' tool calls) share.

The flow is written once, as a generator of steps with no I/O; ``drive`` (sync) and
``adrive`` (asyncio) make its control-plane calls and run the action. It governs with
``claim=True`` under a key that stays the same when the framework re-runs the step (a
resume, a retry): the execution that holds the claim runs the action and records its
outcome; any other (a concurrent resume of the same checkpoint, an earlier attempt)
waits for that outcome and replays it. A call that needs a person's approval pauses
through the adapter's ``pause`` (the framework's interrupt) and, once resumed, asks ACP
whether the ticket was decided: ACP's ticket decides, never the resume value.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from agent_control_plane.errors import ActionFailedBeforeError
from agent_control_plane.integrations.outcomes import failure_summary, recorded, status_of
from agent_control_plane.models import Decision, Event, Outcome


@dataclass(frozen=True, slots=True)
class Ran:
    """What the flow came to: the decision and, if the action ran, its value."""

    decision: Decision
    value: Any = None
    # True when the action had already run in an earlier execution of this step and its
    # recorded value is returned instead of running it again.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class _Call:
    """One control-plane call the flow needs; the driver makes it, sync or async."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class _RunAction:
    """The flow's request to run the governed action itself."""


_Step = _Call | _RunAction
Flow = Generator[_Step, Any, Ran]
# Called with a decision that needs a person's approval: raises the framework's
# interrupt, or returns (the resume value, ignored) when the run is resumed.
Pause = Callable[[Decision], object]


def jsonable(value: Any) -> dict[str, Any]:
    """What the outcome records about the action's value, so that a later execution can
    replay it: the value itself when it is JSON, else its JSON form when it has one
    (pydantic models, dataclasses, dates: ``pydantic_core.to_jsonable_python``), else its
    repr (replayed as None)."""
    try:
        json.dumps(value)
        return {"value": value}
    except (TypeError, ValueError):
        pass
    try:
        form = to_jsonable_python(value)
        json.dumps(form)
    except (TypeError, ValueError, PydanticSerializationError):
        return {"repr": repr(value)[:500]}
    return {"value": form}


def flow(
    session_id: uuid.UUID | str,
    action: str,
    request: dict[str, Any],
    key: str,
    wait: float,
    pause: Pause | None,
    *,
    deferrals: tuple[type[BaseException], ...] = (),
    anew: str | None = None,
) -> Flow:
    """The steps of one governed action; ``pause`` None returns a decision that needs
    approval as it is (the caller refuses it).

    ``deferrals`` are the errors with which the action says it has not started and waits
    for someone (a framework's own approval): recorded as ``cancelled``, its cost settled
    to 0. ``anew``: the key under which the action is governed anew when the execution
    that held the claim deferred it (None: a deferral is replayed like any failure).
    """
    arguments = {**request, "idempotency_key": key, "claim": True}
    govern = _Call("govern", (session_id, action), arguments)
    decision: Decision = yield govern
    while decision.outcome is Outcome.NEEDS_APPROVAL and pause is not None:
        pause(decision)  # returns the resume value when the framework re-runs the step
        ticket = yield _Call("get_ticket", (decision.ticket_id,))
        if not ticket.pending:
            decision = yield govern  # approved: consumes it; denied or expired: refused
    if not decision.allowed:
        return Ran(decision)
    if not decision.claimed:
        # Another execution of this step holds the claim: a concurrent resume of the same
        # checkpoint, or an earlier run or attempt. Its recorded outcome is the answer.
        outcome: Event = yield _Call("wait_for_outcome", (decision,), {"timeout": wait})
        recorded_result = (outcome.payload or {}).get("result")
        result = recorded_result if isinstance(recorded_result, dict) else {}
        if outcome.outcome != "succeeded":
            if anew is not None and result.get("deferred"):
                # The claimant did nothing: it deferred the action to someone, whose answer
                # the caller brings now. It is a new attempt, decided (and charged) anew.
                return (yield from flow(session_id, action, request, anew, wait, pause))
            detail = result.get("message") or result.get("error") or "no detail"
            raise ActionFailedBeforeError(
                f"{action} {outcome.outcome} in an earlier execution ({detail}); "
                "it is not run twice under one decision"
            )
        return Ran(decision, result.get("value"), replayed=True)
    try:
        value = yield _RunAction()
    except deferrals as deferral:
        deferred = {**failure_summary(deferral), "deferred": True}
        yield _Call(
            "record_outcome", (decision, "cancelled"), {"actual_cost": 0, "result": deferred}
        )
        raise
    except BaseException as error:  # failed (an Exception) or cancelled (any other)
        yield _Call("record_outcome", (decision, status_of(error)), _failure(error))
        raise
    yield _Call("record_outcome", (decision, "succeeded"), {"result": jsonable(value)})
    return Ran(decision, value)


def _failure(error: BaseException) -> dict[str, Any]:
    summary = failure_summary(error)
    # "error" as one line, as earlier versions recorded it (a replay quotes it).
    return {"result": {**summary, "error": f"{summary['error']}: {summary['message']}"}}


class Threaded:
    """A ControlPlane's methods as coroutines (each run in a worker thread), so that
    :func:`adrive` and an adapter's async hooks serve a sync ControlPlane too."""

    def __init__(self, control_plane: Any) -> None:
        self._control_plane = control_plane

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        bound = getattr(self._control_plane, method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(bound, *args, **kwargs)

        return call


def drive(control_plane: Any, steps: Flow, run: Callable[[], Any]) -> Ran:
    """Run ``steps`` against a ControlPlane; ``run()`` is the action."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        if isinstance(step, _RunAction):
            try:
                reply = run()
            except BaseException as exc:  # recorded by the flow, then raised again
                error = exc
            continue
        try:
            reply = getattr(control_plane, step.method)(*step.args, **step.kwargs)
        except Exception as exc:
            error = exc


async def adrive(control_plane: Any, steps: Flow, run: Callable[[], Any | Awaitable[Any]]) -> Ran:
    """The asyncio twin of :func:`drive`; ``run`` may be sync or async."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        if isinstance(step, _RunAction):
            try:
                reply = run()
                if inspect.isawaitable(reply):
                    reply = await reply
            except BaseException as exc:
                error = exc
            continue
        try:
            call = getattr(control_plane, step.method)(*step.args, **step.kwargs)
            # An outcome is written even while the task is being cancelled again.
            reply = await (recorded(call) if step.method == "record_outcome" else call)
        except Exception as exc:
            error = exc
