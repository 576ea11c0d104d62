"""What a control plane remembers between calls, bounded: each cache keeps at most a fixed
number of entries and forgets the least recently used first. Forgetting never changes a
result, only costs a read: every remembered value is either immutable (a session's policy,
a compiled policy) or checked by the statement that uses it (a chain head, a budget epoch)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from agent_control_plane.models import Principal, TokenBudget
from agent_control_plane.rules.audit import Counters
from agent_control_plane.rules.routing import CompiledPolicy

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

# How many entries each cache keeps at most (sessions, policies, chain heads and counters,
# identities' token budgets): about a megabyte each, whatever the number of sessions.
DEFAULT_ENTRIES = 4096


class Bounded(Generic[K, V]):
    """A mapping that keeps at most ``limit`` entries, least recently used forgotten first."""

    __slots__ = ("_entries", "limit")

    def __init__(self, limit: int = DEFAULT_ENTRIES) -> None:
        if limit < 1:
            raise ValueError("a cache keeps at least one entry")
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        try:
            value = self._entries[key]
            self._entries.move_to_end(key)
        except KeyError:  # absent, or forgotten by another thread in between
            return default
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        with suppress(KeyError):  # another thread forgot it, or emptied the cache, in between
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def forget_oldest(self) -> None:
        with suppress(KeyError):
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What never changes about a session, cached after the first read."""

    policy_id: uuid.UUID
    tenant: str | None
    agent_id: str


@dataclass(frozen=True, slots=True)
class Head:
    """Where this process wrote a session's last event: the next event's seq, the last
    event's hash, and the session's counters that event recorded. The statement that
    uses it checks all three, so a stale head costs a read, never a wrong chain."""

    next_seq: int
    hash: str
    counters: Counters


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """An API key as last read, to verify presented keys against without a read: its
    secret's hash (a presented secret is still hashed and compared in constant time), what
    it may do, when it expires, and when it was read (``time.monotonic()``)."""

    secret_hash: str
    principal: Principal
    expires_at: datetime | None
    read_at: float


class Memory:
    """Everything one control plane remembers between calls, each kind in a cache of at
    most ``limit`` entries. Operations go through these methods only; nothing here reads
    the database (the operations read, then remember)."""

    __slots__ = ("_budgets", "_caches", "_facts", "_heads", "_keys", "_limits", "_policies")

    def __init__(self, limit: int = DEFAULT_ENTRIES) -> None:
        self._facts: Bounded[uuid.UUID, SessionFacts] = Bounded(limit)
        self._policies: Bounded[uuid.UUID, CompiledPolicy] = Bounded(limit)
        self._heads: Bounded[uuid.UUID, Head] = Bounded(limit)
        self._limits: Bounded[uuid.UUID, tuple[Decimal, int]] = Bounded(limit)
        self._budgets: Bounded[tuple[Any, ...], tuple[int, list[TokenBudget]]] = Bounded(limit)
        self._keys: Bounded[str, VerifiedKey] = Bounded(limit)
        self._caches: dict[str, Bounded[Any, Any]] = {
            "sessions": self._facts,
            "policies": self._policies,
            "chain_heads": self._heads,
            "session_limits": self._limits,
            "token_budgets": self._budgets,
            "api_keys": self._keys,
        }

    def bound(self, entries: int) -> None:
        """Keep at most ``entries`` entries in each cache (forgetting the oldest now)."""
        if entries < 1:
            raise ValueError("a cache keeps at least one entry")
        for cache in self._caches.values():
            cache.limit = entries
            while len(cache) > entries:
                cache.forget_oldest()

    def sizes(self) -> dict[str, int]:
        """How many entries each cache holds now."""
        return {name: len(cache) for name, cache in self._caches.items()}

    def limit(self) -> int:
        return self._facts.limit

    def forget_all(self) -> None:
        for cache in self._caches.values():
            cache.clear()

    def session_facts(self, session_id: uuid.UUID) -> SessionFacts | None:
        return self._facts.get(session_id)

    def remember_session(self, session_id: uuid.UUID, facts: SessionFacts) -> None:
        self._facts[session_id] = facts

    def policy(self, policy_id: uuid.UUID) -> CompiledPolicy | None:
        return self._policies.get(policy_id)

    def remember_policy(self, policy_id: uuid.UUID, compiled: CompiledPolicy) -> None:
        self._policies[policy_id] = compiled

    def head(self, session_id: uuid.UUID) -> Head | None:
        return self._heads.get(session_id)

    def remember_head(
        self, session_id: uuid.UUID, next_seq: int, hash: str, counters: Counters
    ) -> None:
        self._heads[session_id] = Head(next_seq, hash, counters)

    def forget_head(self, session_id: uuid.UUID) -> None:
        self._heads.pop(session_id)

    def limits(self, session_id: uuid.UUID) -> tuple[Decimal, int] | None:
        """The session's max_cost and max_actions as last read (checked where used)."""
        return self._limits.get(session_id)

    def remember_limits(self, session_id: uuid.UUID, max_cost: Decimal, max_actions: int) -> None:
        self._limits[session_id] = (max_cost, max_actions)

    def budgets(self, identity: tuple[Any, ...]) -> tuple[int, list[TokenBudget]] | None:
        """The token budgets read for ``identity``, with the budget epoch of that read."""
        return self._budgets.get(identity)

    def remember_budgets(
        self, identity: tuple[Any, ...], epoch: int, budgets: list[TokenBudget]
    ) -> None:
        self._budgets[identity] = (epoch, budgets)

    def verified_key(self, key_id: str) -> VerifiedKey | None:
        return self._keys.get(key_id)

    def remember_key(self, key_id: str, key: VerifiedKey) -> None:
        self._keys[key_id] = key

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id)
