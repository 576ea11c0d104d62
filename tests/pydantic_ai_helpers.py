"""Shared by the Pydantic AI tests: a model that plays a script, offline.

It is Pydantic AI's own ``FunctionModel`` (the way its docs teach testing agents): each
request is answered with the next turn of the script, and the model keeps what it was
shown, so a test can read the tool results the model read.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

Call = tuple[str, str, dict[str, Any]]  # (tool name, call id, arguments)


def turn(*calls: Call) -> list[Call]:
    """One model turn that calls tools."""
    return list(calls)


class Script:
    """The model's answers, in order: a turn of tool calls, or a text (the run's output).
    A script that runs out answers ``"done"``; ``usage`` is the (input, output) tokens
    each answer reports (None: Pydantic AI's estimate)."""

    def __init__(self, *answers: list[Call] | str, usage: tuple[int, int] | None = None) -> None:
        self.answers = list(answers)
        self.usage = usage
        self.seen: list[list[ModelMessage]] = []

    @property
    def model(self) -> FunctionModel:
        return FunctionModel(self._answer, model_name="scripted")

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(list(messages))
        answer = self.answers.pop(0) if self.answers else "done"
        parts: list[Any]
        if isinstance(answer, str):
            parts = [TextPart(answer)]
        else:
            parts = [
                ToolCallPart(name, args, tool_call_id=call_id) for name, call_id, args in answer
            ]
        if self.usage is None:
            return ModelResponse(parts=parts)
        given, taken = self.usage
        return ModelResponse(
            parts=parts, usage=RequestUsage(input_tokens=given, output_tokens=taken)
        )

    def tool_returns(self) -> list[ToolReturnPart]:
        """Every tool result the model was shown by its last request, in order."""
        return tool_returns(self.seen[-1] if self.seen else [])


def tool_returns(messages: Sequence[ModelMessage]) -> list[ToolReturnPart]:
    """The tool results among ``messages``, in order."""
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def close_thread_loop() -> None:
    """Close the event loop ``Agent.run_sync`` left set on this thread (Pydantic AI keeps
    it for the thread's next run_sync); a loop left to the garbage collector warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)
