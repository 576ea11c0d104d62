"""What a control plane remembers between calls, bounded: each cache keeps at most a fixed
number of entries and forgets the least recently used first. Forgetting never changes a
result, only costs a read: every remembered value is either immutable (a session's policy,
a compiled policy) or checked by the statement that uses it (a chain head, a budget epoch)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar, overload

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
        except KeyError:
            return default
        self._entries.move_to_end(key)
        return value

    def __getitem__(self, key: K) -> V:
        value = self._entries[key]
        self._entries.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
