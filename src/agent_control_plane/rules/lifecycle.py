"""Session lifecycle: created → active ⇄ paused → completed | aborted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent_control_plane.statuses import SessionStatus

CREATED, ACTIVE, PAUSED = SessionStatus.CREATED, SessionStatus.ACTIVE, SessionStatus.PAUSED
COMPLETED, ABORTED = SessionStatus.COMPLETED, SessionStatus.ABORTED

LIVE_STATUSES = (CREATED, ACTIVE)
OPEN_STATUSES = (CREATED, ACTIVE, PAUSED)
TERMINAL_STATUSES = (COMPLETED, ABORTED)


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    sources: tuple[SessionStatus, ...]
    target: SessionStatus
    event: str


PAUSE = Transition("pause", LIVE_STATUSES, PAUSED, "session.paused")
RESUME = Transition("resume", (PAUSED,), ACTIVE, "session.resumed")
COMPLETE = Transition("complete", OPEN_STATUSES, COMPLETED, "session.completed")
KILL = Transition("kill", OPEN_STATUSES, ABORTED, "session.killed")

# Recovery of a session whose agent stopped heart-beating: only an active one, so a
# session a person paused, or one that never started, is left as it is.
STALE = {
    "pause": Transition("pause", (ACTIVE,), PAUSED, "session.paused"),
    "abort": Transition("abort", (ACTIVE,), ABORTED, "session.killed"),
}
STALE_REASON = "heartbeat.timeout"


def refusal_for_status(status: str, expires_at: datetime | None, now: datetime) -> str | None:
    """Why a session in this state may not act now, or None if it may."""
    if status == ABORTED:
        return "session.killed"
    if status == COMPLETED:
        return "session.completed"
    if status == PAUSED:
        return "session.paused"
    if expires_at is not None and expires_at <= now:
        return "session.expired"
    return None
