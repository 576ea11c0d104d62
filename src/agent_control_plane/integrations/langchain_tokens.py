"""A LangChain agent's model calls against ACP's token budgets: checked before each call is
made, its usage (``AIMessage.usage_metadata``) recorded after it."""

from __future__ import annotations

import uuid
from typing import Any

from langchain.agents.middleware.types import ModelResponse
from langchain_core.messages import AIMessage

from agent_control_plane.integrations import model_tokens
from agent_control_plane.rules.tokens import Identity, TokenUsage


class ModelCalls(model_tokens.ModelCalls):
    """The token accounting of one middleware, reading LangChain's usage metadata."""

    def usage(
        self, identity: Identity, session_id: uuid.UUID, response: Any
    ) -> list[dict[str, Any]]:
        """record_usage's arguments for each model message of ``response`` with usage."""
        records = []
        for message in _messages(response):
            metadata = message.usage_metadata
            if metadata is None:
                continue
            cached = (metadata.get("input_token_details") or {}).get("cache_read", 0)
            usage = TokenUsage(
                metadata["input_tokens"], metadata["output_tokens"], cached_input_tokens=cached
            )
            key = None if not message.id else f"langchain:{session_id}:{message.id}"
            records.append(self.record(identity, session_id, usage, key))
        return records


def _messages(response: Any) -> list[AIMessage]:
    if isinstance(response, AIMessage):
        return [response]
    inner = getattr(response, "model_response", response)  # an ExtendedModelResponse
    if isinstance(inner, ModelResponse):
        return [m for m in inner.result if isinstance(m, AIMessage)]
    return []
