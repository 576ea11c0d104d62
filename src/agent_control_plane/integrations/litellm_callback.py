"""A LiteLLM callback that holds every call that spends tokens against ACP's token budgets.

Register it with ``AcpBudgetCallback(cp, identity=...).install()`` (or put it in
``litellm.callbacks`` yourself). Before each completion, text completion, Responses API call
or embedding it reserves the worst case (prompt tokens + the request's output limit) against
every matching budget; when the call returns it settles the hold with the usage the provider
reported; on failure it releases the hold. A call over budget never reaches the provider.
Calls that spend in units ACP cannot price (images, audio, video, reranking) are refused.

Which LiteLLM hooks do that, and why sync and async differ (litellm 1.110, read in
``litellm/utils.py`` ``client``; pinned below 1.111 in pyproject):

- Every async entry point (``acompletion``, ``aresponses``, ``atext_completion``,
  ``aembedding``, a Router's, async ``CustomLLM`` providers, async streams) runs
  ``async_pre_call_deployment_hook`` before the request and lets its exceptions through:
  the caller gets ACP's own ``TokenBudgetExhausted``, ``ModelNotAllowedError`` or
  ``UnknownModelError``. ``async_post_call_success_deployment_hook`` (and its failure twin)
  run inside the call, so the hold is settled before ``acompletion`` returns, even under
  ``asyncio.run``. A stream is settled when LiteLLM reports it finished.
- The sync entry points have no such hook. ``log_pre_api_call`` runs before the request on
  ``completion``, ``text_completion``, sync streams, a Router's sync calls, and every
  built-in provider's HTTP request; LiteLLM wraps it in ``except Exception`` (a logging hook
  must not break a call), so the sync path raises :class:`LiteLLMCallBlocked`, a
  ``BaseException`` that LiteLLM's handlers do not swallow, carrying ACP's error as
  ``.error``. Nothing is held when it is raised.
- A sync call on which LiteLLM runs no hook before the provider (a sync ``CustomLLM`` that
  does not call ``logging_obj.pre_call``, or ``responses``/``embedding`` answered by
  ``mock_response``) cannot be refused in advance. Its reported usage is recorded as soon
  as LiteLLM reports success (so later calls see it against the budget), and each such call
  is logged at ERROR: nothing passes silently.

LiteLLM reports a sync call's success from a background worker, so its settle lands shortly
after ``completion()`` returns; until then the worst case stays held, which errs on the safe
side. :meth:`AcpBudgetCallback.wait_idle` waits for outstanding settles (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import litellm
from litellm import get_llm_provider
from litellm.integrations.custom_logger import CustomLogger

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    ConfigurationError,
    ControlPlaneError,
    GovernanceUnavailableError,
    InvalidInputError,
    TokenBudgetExhausted,
    UngovernedCallError,
)
from agent_control_plane.integrations import litellm_calls as calls
from agent_control_plane.models import Reservation
from agent_control_plane.operations.tokens import DEFAULT_TTL
from agent_control_plane.rules.tokens import Identity, TokenUsage

logger = logging.getLogger(__name__)

IDENTITY_KEY = "acp_identity"
SESSION_KEY = "acp_session_id"
GOVERNED_CALL_TYPES = calls.GOVERNED
# How many finished calls the callback remembers, so that LiteLLM's later reports of a
# call it settled already are not counted twice.
_REMEMBERED = 4096


class LiteLLMCallBlocked(BaseException):
    """ACP refused a synchronous LiteLLM call before it reached the provider.

    A ``BaseException`` only because LiteLLM swallows every ``Exception`` raised in its sync
    pre-call hook; ``.error`` is ACP's own error (e.g. ``TokenBudgetExhausted``)."""

    def __init__(self, error: ControlPlaneError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class _Call:
    """One call as ACP sees it: who pays, for which model, at most how much."""

    call_id: str
    identity: Identity
    session_id: uuid.UUID | str | None
    model: str
    input_tokens: int
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class _Step:
    """One control-plane call that finishes a LiteLLM call; made sync or async."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _metadata(request: Mapping[str, Any]) -> dict[str, Any]:
    """ACP's keys from wherever this entry point keeps the caller's metadata."""
    params = request.get("litellm_params") or {}
    found: dict[str, Any] = {}
    for source in (
        params.get("metadata"),
        request.get("litellm_metadata"),
        request.get("metadata"),
    ):
        if isinstance(source, Mapping):
            found.update({k: source[k] for k in (IDENTITY_KEY, SESSION_KEY) if k in source})
    return found


def _final(error: ControlPlaneError) -> ControlPlaneError:
    """``error``, marked so that LiteLLM's Router does not retry it: the Router retries a
    failed attempt (``num_retries`` times, with seconds of backoff) unless the error carries
    its own ``num_retries``. A refusal is final, so retrying it only delays it; an outage
    (:class:`GovernanceUnavailableError`) may pass, so the Router keeps retrying that."""
    if not isinstance(error, GovernanceUnavailableError):
        error.num_retries = 0  # type: ignore[attr-defined]  # the attribute the Router reads
    return error


def _refusal(kind: str) -> UngovernedCallError | None:
    if kind not in calls.UNGOVERNABLE:
        return None
    return UngovernedCallError(
        f"litellm {kind} calls spend in a unit ACP's token budgets cannot price, so ACP's "
        "callback refuses them; make them outside the callback's reach, or govern them "
        "with ControlPlane.govern and a cost"
    )


class _Remembered:
    """A bounded set: the newest ``size`` keys."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, key: str | None) -> None:
        if key is None:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class AcpBudgetCallback(CustomLogger):
    """Reserve → settle / release around every LiteLLM call that spends tokens (see the
    module notes for which hooks do it on each entry point).

    ``identity`` and ``session_id`` are the defaults; a call may name its own with
    ``metadata={"acp_identity": Identity(...) or {...}, "acp_session_id": ...}`` (for the
    Responses API, ``litellm_metadata=...``: its ``metadata`` goes to the provider). A call
    without an output limit is held at ``default_max_output_tokens``."""

    def __init__(
        self,
        control_plane: ControlPlane | AsyncControlPlane,
        *,
        identity: Identity | None = None,
        session_id: uuid.UUID | str | None = None,
        default_max_output_tokens: int = 4096,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        super().__init__()
        if default_max_output_tokens <= 0:
            raise InvalidInputError("default_max_output_tokens", "must be positive")
        self._control_plane = control_plane
        self._identity = identity or Identity()
        self._session_id = session_id
        self._default_output = default_max_output_tokens
        self._ttl = ttl
        self._held: dict[str, Reservation] = {}
        self._finished = _Remembered(_REMEMBERED)  # call ids settled, released or recorded
        # Responses whose usage is counted, while they are alive (a CustomLLM provider may
        # answer with the response of a governed litellm call: it counts once).
        self._responses: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._finishing = 0  # finishing steps not yet committed
        self._idle = threading.Condition()

    def install(self) -> AcpBudgetCallback:
        """Add this callback to ``litellm.callbacks`` (process-wide) and return it."""
        if self not in litellm.callbacks:
            litellm.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        """Remove this callback from every list litellm copied it into."""
        litellm.logging_callback_manager.remove_callback_from_all_lists(self)
        if self in litellm.callbacks:
            litellm.callbacks.remove(self)

    # -- what a call asks for -------------------------------------------------------------

    def _identity_and_session(
        self, metadata: Mapping[str, Any]
    ) -> tuple[Identity, uuid.UUID | str | None]:
        raw = metadata.get(IDENTITY_KEY, self._identity)
        identity = raw if isinstance(raw, Identity) else Identity(**dict(raw))
        return identity, metadata.get(SESSION_KEY, self._session_id)

    def _call(self, kind: str, request: Mapping[str, Any], call_id: str) -> _Call:
        identity, session_id = self._identity_and_session(_metadata(request))
        model = _model(request)
        return _Call(
            call_id=call_id,
            identity=identity,
            session_id=session_id,
            model=model,
            input_tokens=calls.input_tokens(kind, model, dict(request)),
            max_output_tokens=calls.max_output_tokens(kind, dict(request), self._default_output),
        )

    def _reserve_arguments(self, call: _Call) -> dict[str, Any]:
        return {
            "identity": call.identity,
            "model": call.model,
            "input_tokens": call.input_tokens,
            "max_output_tokens": call.max_output_tokens,
            "session_id": call.session_id,
            "ttl": self._ttl,
        }

    def _is_held(self, call_id: str) -> bool:
        with self._idle:
            return call_id in self._held or call_id in self._finished

    def _hold(self, call_id: str, reservation: Reservation) -> None:
        with self._idle:
            self._held[call_id] = reservation

    # -- what finishes a call -------------------------------------------------------------

    def _finishing_step(self, request: Mapping[str, Any], response: Any) -> _Step | None:
        """What this report of a finished call asks of ACP (``response`` None: it failed),
        or None when there is nothing (left) to do. Counts the step as outstanding."""
        call_id = str(request.get("litellm_call_id"))
        with self._idle:
            reservation = self._held.pop(call_id, None)
            if reservation is None and (response is None or call_id in self._finished):
                return None
            counted = self._counted(response)
            if response is not None:
                # Only a success finishes a call id: a Router retries a failed call (or
                # falls back) under the same id, and each attempt is held anew.
                self._finished.add(call_id)
            if response is not None and not counted:
                with contextlib.suppress(TypeError):  # a response without weakref support
                    self._responses[id(response)] = response
            step = self._step(request, response, reservation, counted)
            if step is not None:
                self._finishing += 1
            return step

    def _counted(self, response: Any) -> bool:
        return response is not None and self._responses.get(id(response)) is response

    def _after_earlier_holds(self, request: Mapping[str, Any], timeout: float = 10.0) -> None:
        """Before recording a call that was never held, let the holds placed before it
        finish: one of them may be the governed call that produced its response (a sync
        CustomLLM that answers with litellm.completion), whose usage must count once."""
        call_id = str(request.get("litellm_call_id"))
        with self._idle:
            if call_id in self._held or call_id in self._finished:
                return
            earlier = set(self._held)
            self._idle.wait_for(lambda: not earlier.intersection(self._held), timeout)

    def _step(
        self,
        request: Mapping[str, Any],
        response: Any,
        reservation: Reservation | None,
        counted: bool,
    ) -> _Step | None:
        if reservation is not None:
            if response is None or counted:
                # Failed, or a provider that answered with another governed call's response
                # (a CustomLLM calling litellm.completion): that call holds the usage.
                return _Step("release", (reservation,))
            return _Step("settle", (reservation, self._settled_usage(reservation, response)))
        kind = calls.call_type(request.get("call_type"))
        usage = calls.usage(response)
        if counted or kind not in calls.SYNC_GOVERNED or usage is None:
            # Every async entry point runs the hook that holds: an async call this callback
            # never held was not made under it (installed later, or another instance's).
            return None
        identity, session_id = self._identity_and_session(_metadata(request))
        model = _model(request)
        logger.error(
            "litellm %s on %s reached the provider with no hook ACP could hold it in (a sync "
            "CustomLLM provider, or a mock_response); its usage is recorded after the fact. "
            "Use the async entry point, or call logging_obj.pre_call in the provider",
            kind,
            model,
        )
        key = f"litellm:{request.get('litellm_call_id')}"
        return _Step(
            "record_usage",
            (identity, model, usage),
            {"session_id": session_id, "idempotency_key": key},
        )

    def _done(self) -> None:
        with self._idle:
            self._finishing -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every reservation made by this callback was settled or released."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding() == 0, timeout)

    def _outstanding(self) -> int:
        return len(self._held) + self._finishing

    @property
    def outstanding(self) -> int:
        """Reservations held for calls whose settle or release has not committed yet."""
        with self._idle:
            return self._outstanding()

    # -- async entry points ---------------------------------------------------------------

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self._control_plane, method)
        if isinstance(self._control_plane, AsyncControlPlane):
            return await bound(*args, **kwargs)
        return await asyncio.to_thread(bound, *args, **kwargs)

    async def _afinish(self, request: Mapping[str, Any], response: Any) -> None:
        step = self._finishing_step(request, response)
        if step is None:
            return
        try:
            try:
                await self._run(step.method, *step.args, **step.kwargs)
            except asyncio.CancelledError:
                # The loop is closing (asyncio.run returning right after a stream ended)
                # while LiteLLM's report of the call runs in a task of its own: finish the
                # step anyway, so no hold is left to expire (each step is idempotent).
                await self._run(step.method, *step.args, **step.kwargs)
                raise
        except TokenBudgetExhausted as over:
            _log_over(step, over)
        finally:
            self._done()

    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        kind = calls.call_type(call_type)
        refusal = _refusal(kind)
        if refusal is not None:
            raise _final(refusal)
        call_id = kwargs.get("litellm_call_id")
        if kind not in calls.GOVERNED or call_id is None or self._is_held(str(call_id)):
            return None
        call = self._call(kind, kwargs, str(call_id))
        try:
            reservation = await self._run("reserve_tokens", **self._reserve_arguments(call))
        except ControlPlaneError as error:
            if kind in calls.SYNC_GOVERNED:
                # A sync call running this hook itself (litellm.responses does): LiteLLM
                # maps every Exception to a provider error, so stop it as the sync path does.
                raise LiteLLMCallBlocked(error) from error
            _final(error)
            raise
        self._hold(call.call_id, reservation)
        return None

    async def async_post_call_success_deployment_hook(
        self, request_data: dict[str, Any], response: Any, call_type: Any
    ) -> Any:
        # Runs inside the call: settled before acompletion returns (asyncio.run included).
        await self._afinish(request_data, response)
        return None

    async def async_post_call_failure_deployment_hook(
        self,
        request_data: Mapping[str, object],
        exception: Exception,
        call_type: Any,
        fallback_depth: int | None = None,
    ) -> None:
        await self._afinish(request_data, None)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._afinish(kwargs, response_obj)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._afinish(kwargs, None)

    # -- sync entry points ----------------------------------------------------------------

    def _sync_control_plane(self) -> ControlPlane:
        if not isinstance(self._control_plane, ControlPlane):
            raise LiteLLMCallBlocked(
                ConfigurationError(
                    "this callback holds an AsyncControlPlane: use acompletion (LiteLLM's "
                    "async entry points), or give the callback a ControlPlane for the sync ones"
                )
            )
        return self._control_plane

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        kind = calls.call_type(kwargs.get("call_type"))
        refusal = _refusal(kind)
        if refusal is not None:
            raise LiteLLMCallBlocked(refusal)
        if kind not in calls.SYNC_GOVERNED:
            return  # an async call is held by its async hook
        call_id = str(kwargs.get("litellm_call_id"))
        if self._is_held(call_id):  # held by an earlier attempt
            return
        request = {**kwargs, "messages": messages} if isinstance(messages, list) else kwargs
        call = self._call(kind, request, call_id)
        control_plane = self._sync_control_plane()
        try:
            reservation = control_plane.reserve_tokens(**self._reserve_arguments(call))
        except ControlPlaneError as error:
            raise LiteLLMCallBlocked(error) from error
        self._hold(call.call_id, reservation)

    def _finish(self, request: Mapping[str, Any], response: Any) -> None:
        if response is not None:
            self._after_earlier_holds(request)
        step = self._finishing_step(request, response)
        if step is None:
            return
        try:
            if isinstance(self._control_plane, ControlPlane):
                getattr(self._control_plane, step.method)(*step.args, **step.kwargs)
            else:
                logger.error("a sync litellm call finished under an AsyncControlPlane: %s", step)
        except TokenBudgetExhausted as over:
            _log_over(step, over)
        finally:
            self._done()

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._finish(kwargs, response_obj)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._finish(kwargs, None)

    # -- shared ---------------------------------------------------------------------------

    @staticmethod
    def _settled_usage(reservation: Reservation, response: Any) -> TokenUsage:
        usage = calls.usage(response)
        if usage is not None:
            return usage
        # No usage reported (e.g. a stream without include_usage): record the worst case
        # that was held, so no spend goes unrecorded.
        logger.warning(
            "litellm reported no usage for reservation %s; settling the held worst case",
            reservation.id,
        )
        return TokenUsage(reservation.input_tokens, reservation.max_output_tokens)


def _model(request: Mapping[str, Any]) -> str:
    model = str(request.get("model") or "")
    # An unknown provider prefix keeps the name the caller gave.
    with contextlib.suppress(Exception):
        model = get_llm_provider(model)[0]
    return model


def _log_over(step: _Step, over: TokenBudgetExhausted) -> None:
    """Usage recorded after the fact took a budget past its limit: it is recorded (and
    later reservations are refused); the call that made it has returned already."""
    if step.method != "record_usage":
        raise over
    logger.error("usage recorded after the fact exceeded a budget: %s", over)
