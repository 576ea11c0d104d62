"""A LiteLLM callback that holds every completion against ACP's token budgets.

Register it with ``AcpBudgetCallback(cp, identity=...).install()`` (or put it in
``litellm.callbacks`` yourself). Before each
completion it reserves the worst case (prompt tokens + ``max_tokens``) against every matching
budget; on success it settles the hold with the usage the provider reported; on failure it
releases the hold. A call over budget never reaches the provider.

Where the block happens, and why it differs between sync and async (litellm 1.110):

- ``acompletion``: ``async_pre_call_deployment_hook`` runs before the request and LiteLLM
  lets its exceptions through, so the caller gets ACP's own ``TokenBudgetExhausted``,
  ``ModelNotAllowedError`` or ``UnknownModelError``.
- ``completion``: the only hook before the request is ``log_pre_api_call``, and LiteLLM wraps
  it in ``except Exception`` (a logging hook must not break a call). An ``Exception`` raised
  there would be logged and the call would go ahead, over budget. So the sync path raises
  :class:`LiteLLMCallBlocked`, a ``BaseException`` that LiteLLM's handlers do not swallow,
  carrying ACP's error as ``.error``. Nothing is held when it is raised.

LiteLLM reports success from a background worker, so a settle lands shortly after
``completion()`` returns; until then the worst case stays held, which errs on the safe side.
:meth:`AcpBudgetCallback.wait_idle` waits for outstanding settles (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import litellm
from litellm import get_llm_provider, token_counter
from litellm.integrations.custom_logger import CustomLogger

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ConfigurationError, ControlPlaneError, InvalidInputError
from agent_control_plane.models import Reservation
from agent_control_plane.operations.tokens import DEFAULT_TTL
from agent_control_plane.rules.tokens import Identity, TokenUsage

logger = logging.getLogger(__name__)

IDENTITY_KEY = "acp_identity"
SESSION_KEY = "acp_session_id"
GOVERNED_CALL_TYPES = frozenset({"completion", "acompletion"})


class LiteLLMCallBlocked(BaseException):
    """ACP refused a synchronous ``litellm.completion`` before it reached the provider.

    A ``BaseException`` only because LiteLLM swallows every ``Exception`` raised in its sync
    pre-call hook; ``.error`` is ACP's own error (e.g. ``TokenBudgetExhausted``)."""

    def __init__(self, error: ControlPlaneError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class _Call:
    """One completion as ACP sees it: who pays, for which model, at most how much."""

    call_id: str
    identity: Identity
    session_id: uuid.UUID | str | None
    model: str
    input_tokens: int
    max_output_tokens: int


def _call_type(value: object) -> str:
    return str(getattr(value, "value", value))


def _usage(response: Any) -> TokenUsage | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    prompt = int(usage.prompt_tokens or 0)
    return TokenUsage(prompt, int(usage.completion_tokens or 0), min(int(cached), prompt))


class AcpBudgetCallback(CustomLogger):
    """Reserve → settle / release around every LiteLLM completion (see the module notes).

    ``identity`` and ``session_id`` are the defaults; a call may name its own with
    ``metadata={"acp_identity": Identity(...) or {...}, "acp_session_id": ...}``. A call
    without ``max_tokens`` is held at ``default_max_output_tokens``."""

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
        self._finishing = 0  # taken from _held, settle or release not yet committed
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

    def _call(self, kwargs: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> _Call:
        metadata = metadata or {}
        raw_identity = metadata.get(IDENTITY_KEY, self._identity)
        identity = (
            raw_identity if isinstance(raw_identity, Identity) else Identity(**dict(raw_identity))
        )
        model = str(kwargs.get("model") or "")
        # An unknown provider prefix keeps the name the caller gave.
        with contextlib.suppress(Exception):
            model = get_llm_provider(model)[0]
        messages = kwargs.get("messages") or []
        optional = kwargs.get("optional_params") or {}
        max_output = (
            kwargs.get("max_completion_tokens")
            or kwargs.get("max_tokens")
            or optional.get("max_completion_tokens")
            or optional.get("max_tokens")
            or self._default_output
        )
        return _Call(
            call_id=str(kwargs["litellm_call_id"]),
            identity=identity,
            session_id=metadata.get(SESSION_KEY, self._session_id),
            model=model,
            input_tokens=int(token_counter(model=model, messages=messages)),
            max_output_tokens=int(max_output),
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

    def _hold(self, call_id: str, reservation: Reservation) -> None:
        with self._idle:
            self._held[call_id] = reservation

    def _take(self, kwargs: Mapping[str, Any]) -> Reservation | None:
        with self._idle:
            reservation = self._held.pop(str(kwargs.get("litellm_call_id")), None)
            if reservation is not None:
                self._finishing += 1
            return reservation

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

    # -- async path: acompletion ----------------------------------------------------------

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self._control_plane, method)
        if isinstance(self._control_plane, AsyncControlPlane):
            return await bound(*args, **kwargs)
        return await asyncio.to_thread(bound, *args, **kwargs)

    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        if _call_type(call_type) not in GOVERNED_CALL_TYPES:
            return None
        call = self._call(kwargs, kwargs.get("metadata"))
        reservation = await self._run("reserve_tokens", **self._reserve_arguments(call))
        self._hold(call.call_id, reservation)
        return None

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        reservation = self._take(kwargs)
        if reservation is not None:
            try:
                await self._run(
                    "settle", reservation, self._settled_usage(reservation, response_obj)
                )
            finally:
                self._done()

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        reservation = self._take(kwargs)
        if reservation is not None:
            try:
                await self._run("release", reservation)
            finally:
                self._done()

    # -- sync path: completion ------------------------------------------------------------

    def _sync_control_plane(self) -> ControlPlane:
        if not isinstance(self._control_plane, ControlPlane):
            raise LiteLLMCallBlocked(
                ConfigurationError(
                    "this callback holds an AsyncControlPlane: use litellm.acompletion, "
                    "or give the callback a ControlPlane for litellm.completion"
                )
            )
        return self._control_plane

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        if _call_type(kwargs.get("call_type")) != "completion":
            return
        call_id = str(kwargs.get("litellm_call_id"))
        with self._idle:
            if call_id in self._held:  # held by the async hook, or by an earlier attempt
                return
        params = kwargs.get("litellm_params") or {}
        call = self._call(kwargs, params.get("metadata"))
        control_plane = self._sync_control_plane()
        try:
            reservation = control_plane.reserve_tokens(**self._reserve_arguments(call))
        except ControlPlaneError as error:
            raise LiteLLMCallBlocked(error) from error
        self._hold(call.call_id, reservation)

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        reservation = self._take(kwargs)
        if reservation is not None:
            try:
                self._sync_control_plane().settle(
                    reservation, self._settled_usage(reservation, response_obj)
                )
            finally:
                self._done()

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        reservation = self._take(kwargs)
        if reservation is not None:
            try:
                self._sync_control_plane().release(reservation)
            finally:
                self._done()

    # -- shared ---------------------------------------------------------------------------

    @staticmethod
    def _settled_usage(reservation: Reservation, response: Any) -> TokenUsage:
        usage = _usage(response)
        if usage is not None:
            return usage
        # No usage reported (e.g. a stream without include_usage): record the worst case
        # that was held, so no spend goes unrecorded.
        logger.warning(
            "litellm reported no usage for reservation %s; settling the held worst case",
            reservation.id,
        )
        return TokenUsage(reservation.input_tokens, reservation.max_output_tokens)
