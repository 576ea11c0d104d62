"""``@cp.governed(...)``: govern a function call, run it only if allowed, record what happened.

The same decorator serves ``ControlPlane`` (plain functions) and ``AsyncControlPlane``
(``async def`` functions); only the three awaited calls differ between the two wrappers.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.integrations.refusals import refusal
from agent_control_plane.models import Decision
from agent_control_plane.rules import validation

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

F = TypeVar("F", bound=Callable[..., Any])

# Either a value, or a callable that derives it from the decorated call's arguments.
Derived = Any

_current_session: ContextVar[uuid.UUID | None] = ContextVar("acp_session", default=None)
_SUMMARY_LIMIT = 500


@contextmanager
def session_scope(session_id: uuid.UUID | str) -> Iterator[uuid.UUID]:
    """Govern every ``@governed`` call inside the block under ``session_id``."""
    sid = validation.session_id(session_id)
    token = _current_session.set(sid)
    try:
        yield sid
    finally:
        _current_session.reset(token)


def _short(text: str) -> str:
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def _plain(value: Any) -> Any:
    """A JSON-ready stand-in for an argument: data stays data, anything else its repr."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return _short(repr(value))


def default_summary(result: Any) -> dict[str, Any]:
    """What the outcome event records about a return value unless ``summary=`` says otherwise."""
    return {"type": type(result).__name__, "repr": _short(repr(result))}


def failure_summary(error: BaseException) -> dict[str, Any]:
    return {"error": type(error).__name__, "message": _short(str(error))}


@dataclass(frozen=True, slots=True)
class GovernedCall:
    """What ``@governed`` asks ``govern`` for each call, derived from the call's arguments."""

    action: str
    cost: Derived
    resource: Derived
    args: Derived
    weight: Derived
    score: Derived
    idempotency_key: Derived
    session: Derived
    summary: Callable[[Any], dict[str, Any]]

    def request(
        self, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[uuid.UUID, dict[str, Any]]:
        """The session id and govern() keywords for one call."""

        def derive(value: Derived) -> Any:
            return value(*args, **kwargs) if callable(value) else value

        session = derive(self.session) if self.session is not None else _current_session.get()
        if session is None:
            raise InvalidInputError(
                "session",
                f"no session for {self.action}: pass session= to @governed, or call it "
                "inside `with cp.session_scope(session_id):`",
            )
        if self.args is None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            call_args = {
                name: _plain(value)
                for name, value in bound.arguments.items()
                if name not in ("self", "cls")
            }
        else:
            call_args = derive(self.args)
        return validation.session_id(session), {
            "resource": derive(self.resource),
            "args": call_args,
            "cost": derive(self.cost),
            "weight": derive(self.weight),
            "score": derive(self.score),
            "idempotency_key": derive(self.idempotency_key),
        }


def _allowed_or_raise(decision: Decision) -> Decision:
    error = refusal(decision)
    if error is not None:
        raise error
    return decision


def governed(
    control_plane: ControlPlane | AsyncControlPlane, call: GovernedCall
) -> Callable[[F], F]:
    """The decorator ``cp.governed(...)`` returns; see ``ControlPlane.governed``."""
    asynchronous = inspect.iscoroutinefunction(control_plane.govern)
    validation.required_text(call.action, "action")

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        if inspect.iscoroutinefunction(function) != asynchronous:
            kind = "an async def" if asynchronous else "a plain (not async def)"
            owner = type(control_plane).__name__
            raise TypeError(
                f"{owner}.governed decorates {kind} function; {function.__qualname__} is not. "
                "Use ControlPlane for plain functions and AsyncControlPlane for coroutines."
            )
        if asynchronous:
            acp: Any = control_plane

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                session_id, request = call.request(signature, args, kwargs)
                decision = _allowed_or_raise(await acp.govern(session_id, call.action, **request))
                try:
                    result = await function(*args, **kwargs)
                except Exception as error:
                    await acp.record_outcome(decision, "failed", result=failure_summary(error))
                    raise
                await acp.record_outcome(decision, "succeeded", result=call.summary(result))
                return result

            return run_async  # type: ignore[return-value]

        cp: Any = control_plane

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            session_id, request = call.request(signature, args, kwargs)
            decision = _allowed_or_raise(cp.govern(session_id, call.action, **request))
            try:
                result = function(*args, **kwargs)
            except Exception as error:
                cp.record_outcome(decision, "failed", result=failure_summary(error))
                raise
            cp.record_outcome(decision, "succeeded", result=call.summary(result))
            return result

        return run  # type: ignore[return-value]

    return decorate
