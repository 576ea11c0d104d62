"""What an agent proposes to do: the input every rule looks at."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Proposal:
    action: str
    resource: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    weight: float | None = None
    score: float | None = None

    @property
    def risk(self) -> float | None:
        """weight * (1 - score): high when an action is heavy and the agent unsure."""
        if self.weight is None or self.score is None:
            return None
        return self.weight * (1.0 - self.score)
