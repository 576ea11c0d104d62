"""The back-off schedule for waiting on a decision, shared by sync and async callers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from agent_control_plane.rules import validation

FIRST_DELAY = 0.05
MAX_DELAY = 1.0


def delays(timeout: float, clock: Callable[[], float] = time.monotonic) -> Iterator[float | None]:
    """Yield how long to sleep before the next look; None means: look once more, then stop."""
    timeout = validation.seconds(timeout, "timeout")
    deadline = clock() + timeout
    delay = FIRST_DELAY
    while True:
        left = deadline - clock()
        if left <= 0:
            yield None
            return
        yield min(delay, left)
        delay = min(delay * 2, MAX_DELAY)
