"""A scripted stand-in for an OpenAI Agents SDK model: no network, no API key.

For tests and demos of governed agents: each model call returns the next scripted turn
(tool calls or a message) with fixed token usage, and the model keeps what it was shown.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents import Model, ModelResponse, Usage
from agents.items import TResponseOutputItem
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)


def tool_call(name: str, call_id: str, **arguments: Any) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call",
        id=f"fc_{call_id}",
        call_id=call_id,
        name=name,
        arguments=json.dumps(arguments),
        status="completed",
    )


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        type="message",
        id="msg_1",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


class ScriptedModel(Model):
    """Answers each call with the next scripted turn and fixed usage; keeps what it saw."""

    def __init__(
        self,
        turns: list[list[TResponseOutputItem]],
        input_tokens: int = 100,
        output_tokens: int = 20,
    ) -> None:
        self.turns = list(turns)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.inputs: list[Any] = []

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.inputs.append(args[1] if len(args) > 1 else kwargs.get("input"))
        if not self.turns:
            raise AssertionError("the model was called more often than scripted")
        usage = Usage(
            requests=1,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
        )
        return ModelResponse(
            output=self.turns.pop(0), usage=usage, response_id=f"resp_{uuid.uuid4().hex}"
        )

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the scripted model does not stream")

    def tool_outputs(self) -> list[str]:
        """Every tool output the model was shown by its last call, in order."""
        given = self.inputs[-1] if self.inputs else []
        return [
            str(item.get("output"))
            for item in (given if isinstance(given, list) else [])
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
