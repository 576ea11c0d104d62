"""Session lifecycle: created → active ⇄ paused → completed | aborted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

LIVE_STATUSES = ("created", "active")
OPEN_STATUSES = ("created", "active", "paused")
TERMINAL_STATUSES = ("completed", "aborted")


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: str
    event: str


PAUSE = Transition("pause", LIVE_STATUSES, "paused", "session.paused")
RESUME = Transition("resume", ("paused",), "active", "session.resumed")
COMPLETE = Transition("complete", OPEN_STATUSES, "completed", "session.completed")
KILL = Transition("kill", OPEN_STATUSES, "aborted", "session.killed")

# Recovery of a session whose agent stopped heart-beating: only an active one, so a
# session a person paused, or one that never started, is left as it is.
STALE = {
    "pause": Transition("pause", ("active",), "paused", "session.paused"),
    "abort": Transition("abort", ("active",), "aborted", "session.killed"),
}
STALE_REASON = "heartbeat.timeout"


def refusal_for_status(status: str, expires_at: datetime | None, now: datetime) -> str | None:
    """Why a session in this state may not act now, or None if it may."""
    if status == "aborted":
        return "session.killed"
    if status == "completed":
        return "session.completed"
    if status == "paused":
        return "session.paused"
    if expires_at is not None and expires_at <= now:
        return "session.expired"
    return None
