"""A LangChain agent's model calls against ACP's token budgets: checked before each call is
made, its usage (``AIMessage.usage_metadata``) recorded after it."""

from __future__ import annotations

import uuid
from typing import Any

from langchain.agents.middleware.types import ModelResponse
from langchain_core.messages import AIMessage

from agent_control_plane.models import Session
from agent_control_plane.rules.tokens import Identity, TokenUsage


class ModelCalls:
    """The token accounting of one middleware: ``model`` is the price-table name of the
    agent's model; ``identity`` whose budgets (default: the session's tenant and agent)."""

    def __init__(self, model: str, identity: Identity | None) -> None:
        self.model = model
        self._identity = identity
        self._identities: dict[uuid.UUID, Identity] = {}

    def identity(self, session: Session) -> Identity:
        return self._identity or Identity(org=session.tenant, agent=session.agent_id)

    def known_identity(self, session_id: uuid.UUID) -> Identity | None:
        return self._identity or self._identities.get(session_id)

    def remember(self, session: Session) -> Identity:
        identity = self._identities[session.id] = self.identity(session)
        return identity

    def probe(self, identity: Identity, session_id: uuid.UUID) -> dict[str, Any]:
        """reserve_tokens' arguments for a hold of nothing: refused when a budget is spent."""
        return {
            "identity": identity,
            "model": self.model,
            "input_tokens": 0,
            "max_output_tokens": 0,
            "session_id": session_id,
        }

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
            records.append(
                {
                    "identity": identity,
                    "model": self.model,
                    "usage": usage,
                    "session_id": session_id,
                    "idempotency_key": key,
                }
            )
        return records


def _messages(response: Any) -> list[AIMessage]:
    if isinstance(response, AIMessage):
        return [response]
    inner = getattr(response, "model_response", response)  # an ExtendedModelResponse
    if isinstance(inner, ModelResponse):
        return [m for m in inner.result if isinstance(m, AIMessage)]
    return []
