"""Shared by the LangChain tests: a chat model that plays a script, offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult


def turn(*calls: tuple[str, str, dict[str, Any]]) -> AIMessage:
    """One model turn that calls tools: (name, call id, arguments) each."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "id": call_id, "args": args} for name, call_id, args in calls],
    )


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's own fake chat model, given tools as create_agent binds them; each call
    answers with the next scripted message, and the model keeps what it was shown."""

    seen: list[list[BaseMessage]] = []
    # (input, output) tokens each answer reports in its usage_metadata; None: no usage.
    usage: tuple[int, int] | None = None

    @classmethod
    def of(
        cls, script: Sequence[AIMessage | str], usage: tuple[int, int] | None = None
    ) -> ScriptedChatModel:
        return cls(messages=iter(list(script)), seen=[], usage=usage)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        result = super()._generate(messages, *args, **kwargs)
        if self.usage is not None:
            answer = result.generations[0].message
            assert isinstance(answer, AIMessage)
            given, taken = self.usage
            answer.usage_metadata = {
                "input_tokens": given,
                "output_tokens": taken,
                "total_tokens": given + taken,
            }
        return result

    def tool_messages(self) -> list[ToolMessage]:
        """Every tool result the model was shown by its last call, in order."""
        last = self.seen[-1] if self.seen else []
        return [message for message in last if isinstance(message, ToolMessage)]
