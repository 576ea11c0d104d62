"""Everything an operation needs besides its connection: tables, settings, clock, memory."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.capabilities import Capabilities, capabilities_of
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.evaluators import EvaluatorRegistry
from agent_control_plane.memory import Memory, SessionFacts
from agent_control_plane.rules.audit_keys import NO_KEYS, Keyring
from agent_control_plane.rules.model_tiers import ModelPolicy
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import (
    CompiledPolicy,
    EvaluatorFailure,
    Outcome,
    Route,
    route,
)
from agent_control_plane.rules.tokens import PriceTable
from agent_control_plane.schema.tables import AcpTables

log = logging.getLogger("agent_control_plane")

# Budgets and the kill check are never on this list: they always fail closed.
FAIL_OPEN_CATEGORIES = frozenset({"evaluator"})


def fail_open_categories(value: Any) -> frozenset[str]:
    categories = frozenset([value] if isinstance(value, str) else (value or ()))
    unknown = categories - FAIL_OPEN_CATEGORIES
    if unknown:
        raise ConfigurationError(
            f"fail_open={sorted(unknown)} is not allowed: only {sorted(FAIL_OPEN_CATEGORIES)} may "
            "fail open; budgets, the kill check and database errors always fail closed"
        )
    for category in categories:
        log.warning("ACP fail-open enabled for %s errors: those failures will not deny", category)
    return categories


@contextmanager
def reading(connection: Connection) -> Iterator[None]:
    """A transaction for a read, unless the caller already opened one. It ends with a
    ROLLBACK: there is nothing to commit, and a connection lost at its end is then not a
    COMMIT whose outcome is unknown (the boundary settles those)."""
    if connection.in_transaction():
        yield
        return
    transaction = connection.begin()
    try:
        yield
    finally:
        transaction.rollback()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Runtime:
    """What an operation works with besides its connection: an immutable context (tables,
    dialect facts, settings, clock, audit keys) and the one :class:`Memory` of its control
    plane. A setting that changes (prices, the model policy) gives the control plane a new
    Runtime sharing the same memory."""

    tables: AcpTables
    # What the database can do for ACP's statements (see capabilities.py).
    capabilities: Capabilities
    evaluators: EvaluatorRegistry = field(default_factory=EvaluatorRegistry)
    prices: PriceTable = field(default_factory=PriceTable)
    model_policy: ModelPolicy | None = None
    fail_open: frozenset[str] = frozenset()
    idempotency_retention: timedelta = timedelta(days=7)
    clock: Callable[[], datetime] = utc_now
    # The key new events are linked with (if any), and every key verification knows.
    keys: Keyring = NO_KEYS
    # Every cache, each bounded (see memory.py).
    memory: Memory = field(default_factory=Memory)

    def bound_memory(self, entries: int) -> None:
        """Keep at most ``entries`` entries in each cache."""
        self.memory.bound(entries)

    @classmethod
    def for_connection_dialect(cls, tables: AcpTables, dialect: Any, **options: Any) -> Runtime:
        return cls(tables=tables, capabilities=capabilities_of(dialect), **options)

    @property
    def dialect(self) -> str:
        """The database's dialect name (mysql for MariaDB too): for messages; decisions ask
        ``capabilities``."""
        return self.capabilities.name

    def route(self, policy: CompiledPolicy, proposal: Proposal) -> Route:
        timeout = policy.document.evaluator_timeout.total_seconds()

        def call(name: str, params: dict[str, Any], subject: Proposal) -> bool:
            try:
                return self.evaluators.call(name, params, subject, timeout)
            except EvaluatorFailure as failure:
                if "evaluator" in self.fail_open:
                    log.warning("ACP fail-open: %s treated as not matching", failure.reason)
                    return False
                raise

        try:
            return route(policy, proposal, call)
        except EvaluatorFailure as failure:
            return Route(Outcome.DENIED, failure.reason)

    def remember_policy(self, policy_id: uuid.UUID, compiled: CompiledPolicy) -> CompiledPolicy:
        """Remember a compiled policy, once every evaluator it names is registered."""
        self.evaluators.require(compiled.document.evaluators())
        self.memory.remember_policy(policy_id, compiled)
        return compiled


__all__ = ["Memory", "Runtime", "SessionFacts", "reading", "utc_now"]
