"""An agent's model calls against ACP's token budgets, the part every framework shares:
whose budgets they count against, the check before a call (a hold of nothing, refused
once a budget is spent) and the record of what a call used after it."""

from __future__ import annotations

import uuid
from typing import Any

from agent_control_plane.models import Session
from agent_control_plane.rules.tokens import Identity, TokenUsage


class ModelCalls:
    """The token accounting of one adapter: ``model`` is the price-table name of the
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

    def record(
        self, identity: Identity, session_id: uuid.UUID, usage: TokenUsage, key: str | None
    ) -> dict[str, Any]:
        """record_usage's arguments for one model call that used ``usage``."""
        return {
            "identity": identity,
            "model": self.model,
            "usage": usage,
            "session_id": session_id,
            "idempotency_key": key,
        }
