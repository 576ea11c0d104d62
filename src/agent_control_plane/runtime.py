"""Everything an operation needs besides its connection: tables, caches, settings, clock."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.evaluators import EvaluatorRegistry
from agent_control_plane.memory import Bounded
from agent_control_plane.models import TokenBudget
from agent_control_plane.rules.audit import Counters
from agent_control_plane.rules.audit_keys import NO_KEYS, Keyring
from agent_control_plane.rules.models_policy import ModelPolicy
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

# Where the hot statements run straight on the driver (store.prepared); MariaDB's
# read-back path stays on SQLAlchemy's pipeline.
DIRECT_EXECUTION_DIALECTS = frozenset({"sqlite", "postgresql"})

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


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What never changes about a session, cached after the first read."""

    policy_id: uuid.UUID
    tenant: str | None
    agent_id: str


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    tables: AcpTables
    dialect: str
    update_returning: bool
    direct_execution: bool = False
    # PostgreSQL through psycopg: a warm allowed decision is one statement in autocommit.
    one_statement_decisions: bool = False
    evaluators: EvaluatorRegistry = field(default_factory=EvaluatorRegistry)
    prices: PriceTable = field(default_factory=PriceTable)
    model_policy: ModelPolicy | None = None
    fail_open: frozenset[str] = frozenset()
    idempotency_retention: timedelta = timedelta(days=7)
    clock: Callable[[], datetime] = utc_now
    # Every cache below keeps at most ``memory.DEFAULT_ENTRIES`` entries (see memory.py).
    policies: Bounded[uuid.UUID, CompiledPolicy] = field(default_factory=Bounded)
    sessions: Bounded[uuid.UUID, SessionFacts] = field(default_factory=Bounded)
    # The key new events are linked with (if any), and every key verification knows.
    keys: Keyring = NO_KEYS
    # Per session, the seq and hash of the event this process wrote last: where the next
    # one goes if no other writer came between (checked by the statement that uses it).
    chain_heads: Bounded[uuid.UUID, tuple[int, str]] = field(default_factory=Bounded)
    # And the session's counters that event recorded (checked by that statement too).
    chain_counters: Bounded[uuid.UUID, Counters] = field(default_factory=Bounded)
    # And the session's budget limits as last read (checked by that statement too).
    chain_limits: Bounded[uuid.UUID, tuple[Decimal, int]] = field(default_factory=Bounded)
    # The token budgets reserve_tokens read per identity, with the budget epoch of the read.
    token_budgets: Bounded[tuple[Any, ...], tuple[int, list[TokenBudget]]] = field(
        default_factory=Bounded
    )

    def bound_memory(self, entries: int) -> None:
        """Keep at most ``entries`` entries in each cache."""
        for cache in (
            self.policies,
            self.sessions,
            self.chain_heads,
            self.chain_counters,
            self.chain_limits,
            self.token_budgets,
        ):
            cache.limit = entries

    @classmethod
    def for_connection_dialect(cls, tables: AcpTables, dialect: Any, **options: Any) -> Runtime:
        return cls(
            tables=tables,
            dialect=dialect.name,
            update_returning=bool(dialect.update_returning),
            direct_execution=dialect.name in DIRECT_EXECUTION_DIALECTS,
            one_statement_decisions=dialect.name == "postgresql" and dialect.driver == "psycopg",
            **options,
        )

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

    def session_facts(self, connection: Connection, session_id: uuid.UUID) -> SessionFacts:
        facts = self.sessions.get(session_id)
        if facts is None:
            from agent_control_plane.store import sessions as session_store

            facts = session_store.facts(connection, self, session_id)
            self.sessions[session_id] = facts
        return facts

    def policy(self, connection: Connection, policy_id: uuid.UUID) -> CompiledPolicy:
        compiled = self.policies.get(policy_id)
        if compiled is None:
            from agent_control_plane.store import policies as policy_store

            with reading(connection):
                snapshot = policy_store.get(connection, self, policy_id)
            compiled = self.remember_policy(policy_id, CompiledPolicy.compile(snapshot.document))
        return compiled

    def remember_head(
        self, session_id: uuid.UUID, next_seq: int, head: str, counters: Counters
    ) -> None:
        self.chain_heads[session_id] = (next_seq, head)
        self.chain_counters[session_id] = counters

    def remember_budgets(
        self, identity: tuple[Any, ...], epoch: int, budgets: list[TokenBudget]
    ) -> None:
        self.token_budgets[identity] = (epoch, budgets)

    def remember_policy(self, policy_id: uuid.UUID, compiled: CompiledPolicy) -> CompiledPolicy:
        self.evaluators.require(compiled.document.evaluators())
        self.policies[policy_id] = compiled
        return compiled
