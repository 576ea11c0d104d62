"""What the facade needs to know about an operation besides its statements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Operations that stop agents: they run on a pool of their own.
URGENT: set[Callable[..., Any]] = set()
# Operations that change nothing when run twice: a failure while committing one is
# settled by running it again.
REPEATABLE: set[Callable[..., Any]] = set()


def urgent(operation: F) -> F:
    """Mark an operation that must never queue behind governed calls (a kill)."""
    URGENT.add(operation)
    return operation


def repeatable(operation: F) -> F:
    """Mark an operation that has the same effect run twice as once."""
    REPEATABLE.add(operation)
    return operation
