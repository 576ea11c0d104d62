"""LangGraph: govern an action inside a node; a needed approval pauses the graph in ACP.

``governed_action`` (sync) and ``agoverned_action`` (async) call ``govern`` with an
idempotency key derived from the thread, the task and the call's place in the node. When
a person must approve, the node interrupts with the ticket id; LangGraph re-runs the node
from the start when resumed, and the same key then finds the same ticket in ACP: approved
runs the action (consuming the approval), denied refuses, still pending interrupts again.

At most once, even when two processes resume the same thread at the same moment: the
decision that allows the action also claims it (``govern(..., claim=True)``), so one
execution runs it and every other waits for its recorded outcome.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from langgraph.config import get_config
from langgraph.runtime import get_runtime
from langgraph.types import interrupt

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ActionFailedBeforeError,
    ConfigurationError,
    InvalidInputError,
)
from agent_control_plane.integrations import claimed
from agent_control_plane.models import Decision

__all__ = [
    "DEFAULT_WAIT",
    "SESSION_KEY",
    "ActionFailedBeforeError",
    "Governed",
    "agoverned_action",
    "governed_action",
]

T = TypeVar("T")

SESSION_KEY = "acp_session_id"
_COUNTERS = "__acp_governed_calls"
# Seconds an execution waits for the outcome of an action another execution claimed.
DEFAULT_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Governed(Generic[T]):
    """What a governed action came to: the decision and, if it ran, the action's value."""

    decision: Decision
    value: T | None = None
    # True when the action had already run in an earlier execution of this node and its
    # recorded value is returned instead of running it again.
    replayed: bool = False

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def refusal(self) -> str | None:
        """A sentence for the agent (or the user) when the action did not run."""
        if self.decision.allowed:
            return None
        decision = self.decision
        text = f"{decision.action} was refused by the control plane ({decision.reason})"
        return f"{text}: {decision.guidance}" if decision.guidance else text


def _call_key(action: str) -> tuple[str, uuid.UUID | None]:
    """The idempotency key of this call: stable when LangGraph re-runs the node after a
    resume or a retry, distinct for each governed call in the node."""
    config = get_config()
    configurable = config.get("configurable", {})
    info = get_runtime().execution_info
    thread = info.thread_id if info is not None else configurable.get("thread_id")
    if info is None or thread is None:
        raise ConfigurationError(
            "governed_action needs a graph compiled with a checkpointer and a config with "
            "configurable.thread_id"
        )
    # Each attempt (a retry policy re-runs the node) numbers its calls from zero again.
    attempt = f"{info.checkpoint_ns}#{info.node_attempt}"
    counters: dict[str, int] = configurable.setdefault(_COUNTERS, {})
    place = counters[attempt] = counters.get(attempt, -1) + 1
    step = config.get("metadata", {}).get("langgraph_step")
    parts = [thread, info.checkpoint_ns, info.task_id, str(step), action, str(place)]
    key = "langgraph:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]
    session = configurable.get(SESSION_KEY)
    return key, None if session is None else uuid.UUID(str(session))


def _pause(decision: Decision) -> object:
    """Interrupt the graph until a person decides; returns the resume value when
    LangGraph re-runs the node (ACP's ticket decides, not that value)."""
    return interrupt(
        {
            "ticket_id": str(decision.ticket_id),
            "session_id": str(decision.session_id),
            "action": decision.action,
            "reason": decision.reason,
        }
    )


def _start(
    session_id: uuid.UUID | str | None,
    action: str,
    request: dict[str, Any],
    key: str | None,
    wait: float,
) -> claimed.Flow:
    derived, configured = _call_key(action)
    sid = session_id if session_id is not None else configured
    if sid is None:
        raise ConfigurationError(
            f"pass session_id or set configurable.{SESSION_KEY} in the graph's config"
        )
    if wait < 0:
        raise InvalidInputError("wait", "must not be negative")
    return claimed.flow(sid, action, request, key or derived, wait, _pause)


def _governed(ran: claimed.Ran) -> Governed[Any]:
    return Governed(ran.decision, ran.value, ran.replayed)


def governed_action(
    control_plane: ControlPlane,
    action: str,
    run: Callable[[], T],
    *,
    session_id: uuid.UUID | str | None = None,
    resource: str | None = None,
    args: dict[str, Any] | None = None,
    cost: Decimal | int | str = 0,
    weight: float | None = None,
    score: float | None = None,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
) -> Governed[T]:
    """Govern ``action`` and run ``run()`` once if allowed, from inside a LangGraph node.

    :param session_id: the ACP session (default: ``configurable.acp_session_id``).
    :param key: the idempotency key; by default derived from the thread, the task and
        the order of governed calls in the node, so a re-run node finds its decision.
    :param wait: how many seconds an execution that does not hold the claim (a concurrent
        resume of the same thread) waits for the claimant's outcome before raising
        ``ActionInProgressError``.
    The action is claimed in ACP in the transaction that decides it (and uses the
    approval): of every execution of this node, only the claimant runs ``run()``; the
    others return its recorded value (``replayed``). The value of ``run()`` is recorded
    with the outcome (JSON values are replayed; others are recorded as their repr). An
    exception is recorded as a failed outcome (a cancellation as cancelled) and
    re-raised. Raises LangGraph's interrupt while a person decides.
    """
    request = {"resource": resource, "args": args, "cost": cost, "weight": weight, "score": score}
    steps = _start(session_id, action, request, key, wait)
    return _governed(claimed.drive(control_plane, steps, run))


@overload
async def agoverned_action(
    control_plane: AsyncControlPlane,
    action: str,
    run: Callable[[], Awaitable[T]],
    *,
    session_id: uuid.UUID | str | None = None,
    resource: str | None = None,
    args: dict[str, Any] | None = None,
    cost: Decimal | int | str = 0,
    weight: float | None = None,
    score: float | None = None,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
) -> Governed[T]: ...


@overload
async def agoverned_action(
    control_plane: AsyncControlPlane,
    action: str,
    run: Callable[[], T],
    *,
    session_id: uuid.UUID | str | None = None,
    resource: str | None = None,
    args: dict[str, Any] | None = None,
    cost: Decimal | int | str = 0,
    weight: float | None = None,
    score: float | None = None,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
) -> Governed[T]: ...


async def agoverned_action(
    control_plane: AsyncControlPlane,
    action: str,
    run: Callable[[], Any],
    *,
    session_id: uuid.UUID | str | None = None,
    resource: str | None = None,
    args: dict[str, Any] | None = None,
    cost: Decimal | int | str = 0,
    weight: float | None = None,
    score: float | None = None,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
) -> Governed[Any]:
    """The asyncio twin of :func:`governed_action`; ``run`` may be sync or async."""
    request = {"resource": resource, "args": args, "cost": cost, "weight": weight, "score": score}
    steps = _start(session_id, action, request, key, wait)
    return _governed(await claimed.adrive(control_plane, steps, run))
