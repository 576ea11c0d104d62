"""Shared by the LangChain tests: a chat model that plays a script, offline."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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

    @classmethod
    def of(cls, script: Sequence[AIMessage | str]) -> ScriptedChatModel:
        return cls(messages=iter(list(script)), seen=[])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def tool_messages(self) -> list[ToolMessage]:
        """Every tool result the model was shown by its last call, in order."""
        last = self.seen[-1] if self.seen else []
        return [message for message in last if isinstance(message, ToolMessage)]


def scripted(script: Sequence[AIMessage | str]) -> Callable[[], Iterator[AIMessage | str]]:
    return lambda: iter(list(script))
