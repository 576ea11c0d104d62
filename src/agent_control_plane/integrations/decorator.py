"""``@cp.governed(...)``: govern a function call, run it only if allowed, record what happened.

The same decorator serves ``ControlPlane`` (plain functions and generators) and
``AsyncControlPlane`` (``async def`` functions and async generators). How a call ended
becomes its outcome by one rule (``integrations.outcomes``) for all four shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.integrations.outcomes import failure_summary, recorded, short, status_of
from agent_control_plane.integrations.refusals import refusal
from agent_control_plane.models import Decision
from agent_control_plane.rules import validation

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

F = TypeVar("F", bound=Callable[..., Any])

# Either a value, or a callable that derives it from the decorated call's arguments.
Derived = Any

_current_session: ContextVar[uuid.UUID | None] = ContextVar("acp_session", default=None)


@contextmanager
def session_scope(session_id: uuid.UUID | str) -> Iterator[uuid.UUID]:
    """Govern every ``@governed`` call inside the block under ``session_id``."""
    sid = validation.session_id(session_id)
    token = _current_session.set(sid)
    try:
        yield sid
    finally:
        _current_session.reset(token)


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
    return short(repr(value))


def default_summary(result: Any) -> dict[str, Any]:
    """What the outcome event records about a return value unless ``summary=`` says otherwise."""
    return {"type": type(result).__name__, "repr": short(repr(result))}


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


def _generator_result(call: GovernedCall, returned: Any, items: int) -> dict[str, Any]:
    """What a generator that ran to its end records: how many items it gave, and its
    return value summarised (if it returned one, or ``summary=`` says how)."""
    result: dict[str, Any] = {}
    if returned is not None or call.summary is not default_summary:
        result.update(call.summary(returned))
    result["items"] = items
    return result


def _ended(error: BaseException, items: int | None = None) -> dict[str, Any]:
    summary = failure_summary(error)
    return summary if items is None else {**summary, "items": items}


async def _decided(acp: Any, session_id: uuid.UUID, call: GovernedCall, request: Any) -> Decision:
    """govern's decision; a caller cancelled while it is made gets no decision, but the
    decision may still be made (a worker thread goes on): it is then recorded cancelled."""
    deciding = asyncio.ensure_future(acp.govern(session_id, call.action, **request))
    try:
        return await asyncio.shield(deciding)
    except asyncio.CancelledError as cancelled:
        with contextlib.suppress(Exception):
            decision: Decision = await deciding
            if decision.allowed:
                await recorded(acp.record_outcome(decision, "cancelled", result=_ended(cancelled)))
        raise


def governed(
    control_plane: ControlPlane | AsyncControlPlane, call: GovernedCall
) -> Callable[[F], F]:
    """The decorator ``cp.governed(...)`` returns; see ``ControlPlane.governed``."""
    asynchronous = inspect.iscoroutinefunction(control_plane.govern)
    validation.required_text(call.action, "action")

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        if _is_async(function) != asynchronous:
            kinds = (
                "async def functions and async generators"
                if asynchronous
                else ("plain functions and generators (not async def)")
            )
            owner = type(control_plane).__name__
            raise TypeError(
                f"{owner}.governed decorates {kinds}; {function.__qualname__} is not one. "
                "Use ControlPlane for plain functions and AsyncControlPlane for coroutines."
            )
        if inspect.isasyncgenfunction(function):
            return _async_generator(control_plane, call, signature, function)
        if inspect.iscoroutinefunction(function):
            return _coroutine(control_plane, call, signature, function)
        if inspect.isgeneratorfunction(function):
            return _generator(control_plane, call, signature, function)
        return _function(control_plane, call, signature, function)

    return decorate


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


# One rule, four shapes: govern first (refused: raise, the body never runs); then record
# succeeded, failed (an Exception) or cancelled (any other BaseException: cancellation,
# timeout, interrupt, a generator closed early). Generators are decided when their first
# item is asked for, and recorded with the number of items they gave.


def _function(cp: Any, call: GovernedCall, signature: inspect.Signature, function: F) -> F:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        session_id, request = call.request(signature, args, kwargs)
        decision = _allowed_or_raise(cp.govern(session_id, call.action, **request))
        try:
            result = function(*args, **kwargs)
        except BaseException as error:
            cp.record_outcome(decision, status_of(error), result=_ended(error))
            raise
        cp.record_outcome(decision, "succeeded", result=call.summary(result))
        return result

    return run  # type: ignore[return-value]


def _coroutine(acp: Any, call: GovernedCall, signature: inspect.Signature, function: F) -> F:
    @functools.wraps(function)
    async def run(*args: Any, **kwargs: Any) -> Any:
        session_id, request = call.request(signature, args, kwargs)
        decision = _allowed_or_raise(await _decided(acp, session_id, call, request))
        try:
            result = await function(*args, **kwargs)
        except BaseException as error:
            await recorded(acp.record_outcome(decision, status_of(error), result=_ended(error)))
            raise
        await recorded(acp.record_outcome(decision, "succeeded", result=call.summary(result)))
        return result

    return run  # type: ignore[return-value]


def _generator(cp: Any, call: GovernedCall, signature: inspect.Signature, function: F) -> F:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        session_id, request = call.request(signature, args, kwargs)
        decision = _allowed_or_raise(cp.govern(session_id, call.action, **request))
        items = 0
        try:
            generator = function(*args, **kwargs)
            advance: Callable[[], Any] = generator.__next__
            while True:
                try:
                    item = advance()
                except StopIteration as stop:
                    returned = stop.value
                    break
                items += 1
                try:
                    sent = yield item
                except GeneratorExit:
                    generator.close()
                    raise
                except BaseException as thrown:  # what the consumer throws in goes on in
                    advance = functools.partial(generator.throw, thrown)
                else:
                    advance = functools.partial(generator.send, sent)
        except BaseException as error:
            cp.record_outcome(decision, status_of(error), result=_ended(error, items))
            raise
        cp.record_outcome(decision, "succeeded", result=_generator_result(call, returned, items))
        return returned

    return run  # type: ignore[return-value]


def _async_generator(acp: Any, call: GovernedCall, signature: inspect.Signature, function: F) -> F:
    @functools.wraps(function)
    async def run(*args: Any, **kwargs: Any) -> Any:
        session_id, request = call.request(signature, args, kwargs)
        decision = _allowed_or_raise(await _decided(acp, session_id, call, request))
        items = 0
        try:
            generator = function(*args, **kwargs)
            advance: Callable[[], Awaitable[Any]] = generator.__anext__
            while True:
                try:
                    item = await advance()
                except StopAsyncIteration:
                    break
                items += 1
                try:
                    sent = yield item
                except GeneratorExit:
                    await generator.aclose()
                    raise
                except BaseException as thrown:
                    advance = functools.partial(generator.athrow, thrown)
                else:
                    advance = functools.partial(generator.asend, sent)
        except BaseException as error:
            ended = _ended(error, items)
            await recorded(acp.record_outcome(decision, status_of(error), result=ended))
            raise
        ended = _generator_result(call, None, items)
        await recorded(acp.record_outcome(decision, "succeeded", result=ended))

    return run  # type: ignore[return-value]
