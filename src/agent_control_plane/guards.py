"""``token_guard``: reserve before a model call, settle after it, release if it fails."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from agent_control_plane.models import Reservation, UsageRecord
from agent_control_plane.rules.tokens import Identity, TokenUsage

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane


@dataclass(frozen=True, slots=True)
class GuardRequest:
    """What a guard reserves: the worst case of one model call."""

    identity: Identity
    model: str
    input_tokens: int
    max_output_tokens: int
    session_id: uuid.UUID | str | None = None

    def reserve_arguments(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


class _GuardState:
    """What both guards share: the reservation and whether it was settled."""

    def __init__(self, request: GuardRequest) -> None:
        self._arguments = request.reserve_arguments()
        self._reservation: Reservation | None = None
        self.record: UsageRecord | None = None

    @property
    def reservation(self) -> Reservation:
        if self._reservation is None:
            raise RuntimeError("the guard holds no reservation outside its with-block")
        return self._reservation

    def worst_case(self) -> TokenUsage:
        """What is recorded when the block ends without settling: no usage is ever lost."""
        return TokenUsage(self._arguments["input_tokens"], self._arguments["max_output_tokens"])


class TokenGuard(_GuardState):
    """``with cp.token_guard(identity, model, input_tokens=..., max_output_tokens=...) as g:``
    reserves on entry (raising TokenBudgetExhausted before the call is made); call
    ``g.settle(usage)`` with what the model reported. An exception releases the hold; a
    block that ends without settling is settled at the reserved worst case."""

    def __init__(self, control_plane: ControlPlane, request: GuardRequest) -> None:
        super().__init__(request)
        self._control_plane = control_plane

    def __enter__(self) -> Self:
        self._reservation = self._control_plane.reserve_tokens(**self._arguments)
        return self

    def settle(self, usage: TokenUsage) -> UsageRecord:
        self.record = self._control_plane.settle(self.reservation, usage)
        return self.record

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._control_plane.release(self.reservation)
        elif self.record is None:
            self.settle(self.worst_case())


class AsyncTokenGuard(_GuardState):
    """The asyncio twin of :class:`TokenGuard` (``async with acp.token_guard(...)``)."""

    def __init__(self, control_plane: AsyncControlPlane, request: GuardRequest) -> None:
        super().__init__(request)
        self._control_plane = control_plane

    async def __aenter__(self) -> Self:
        self._reservation = await self._control_plane.reserve_tokens(**self._arguments)
        return self

    async def settle(self, usage: TokenUsage) -> UsageRecord:
        self.record = await self._control_plane.settle(self.reservation, usage)
        return self.record

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._control_plane.release(self.reservation)
        elif self.record is None:
            await self.settle(self.worst_case())
