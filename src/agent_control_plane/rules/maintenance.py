"""What one maintenance run does (its settings) and what it did (its report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules.durations import parse_duration

STALE_ACTIONS = ("pause", "abort")
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
DEFAULT_WEBHOOK_TIMEOUT = 5.0


def _duration(value: Any, field: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(field, str(exc)) from None


@dataclass(frozen=True, slots=True)
class MaintenanceSettings:
    """Validated settings of one run; a step whose setting is None does not run."""

    escalate_after: timedelta | None = None
    webhook_url: str | None = None
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    heartbeat_timeout: timedelta | None = None
    on_stale: str = "pause"
    event_retention: timedelta | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def of(
        cls,
        *,
        escalate_after: timedelta | str | float | None = None,
        webhook_url: str | None = None,
        webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        heartbeat_timeout: timedelta | str | float | None = None,
        on_stale: str = "pause",
        event_retention: timedelta | str | float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> MaintenanceSettings:
        """Check every setting before the run writes anything."""
        if webhook_url is not None:
            parts = urlsplit(webhook_url) if isinstance(webhook_url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidInputError("webhook_url", "must be an http:// or https:// URL")
        if (
            isinstance(webhook_timeout, bool)
            or not isinstance(webhook_timeout, int | float)
            or not 0 < webhook_timeout <= 60
        ):
            raise InvalidInputError("webhook_timeout", "must be a number of seconds in (0, 60]")
        if on_stale not in STALE_ACTIONS:
            raise InvalidInputError("on_stale", f"must be one of {', '.join(STALE_ACTIONS)}")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= MAX_BATCH_SIZE
        ):
            raise InvalidInputError("batch_size", f"must be an integer in 1..{MAX_BATCH_SIZE}")
        escalate = _duration(escalate_after, "escalate_after")
        if webhook_url is not None and escalate is None:
            raise InvalidInputError("webhook_url", "is only used with escalate_after")
        return cls(
            escalate_after=escalate,
            webhook_url=webhook_url,
            webhook_timeout=float(webhook_timeout),
            heartbeat_timeout=_duration(heartbeat_timeout, "heartbeat_timeout"),
            on_stale=on_stale,
            event_retention=_duration(event_retention, "event_retention"),
            batch_size=batch_size,
        )


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """How many rows each step of one maintenance run changed."""

    tickets_expired: int = 0
    tickets_escalated: int = 0
    webhook_failures: int = 0
    holds_released: int = 0
    sessions_paused: int = 0
    sessions_aborted: int = 0
    idempotency_keys_pruned: int = 0
    events_pruned: int = 0
    sessions_pruned: int = 0
    sessions_not_pruned: int = 0

    @property
    def ok(self) -> bool:
        """False when a webhook failed (retried next run) or a chain refused pruning."""
        return self.webhook_failures == 0 and self.sessions_not_pruned == 0

    def to_json_data(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
