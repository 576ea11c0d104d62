"""Sign-in attempts, throttled: after a few failures from one client address, or for one
key id, the next attempts are refused (429 with Retry-After) until the oldest failure ages
out of the window. A successful sign-in is never held back by others' failures on a
different address and key. What it remembers is bounded, like every cache ACP keeps."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from agent_control_plane.memory import Bounded

FAILURES_ALLOWED = 5
WINDOW_SECONDS = 300.0


class SignInThrottle:
    def __init__(
        self,
        failures: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures = failures
        self._window = window
        self._clock = clock
        self._seen: Bounded[str, deque[float]] = Bounded()
        self._lock = threading.Lock()

    def retry_after(self, subjects: Iterable[str]) -> int | None:
        """Seconds until ``subjects`` (a client address, a key id) may try again; None if
        they may now."""
        now = self._clock()
        waits = []
        with self._lock:
            for subject in subjects:
                failures = self._recent(subject, now)
                if len(failures) >= self._failures:
                    waits.append(failures[0] + self._window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, subjects: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for subject in subjects:
                failures = self._recent(subject, now)
                failures.append(now)
                while len(failures) > self._failures:
                    failures.popleft()
                self._seen[subject] = failures

    def succeeded(self, subjects: Iterable[str]) -> None:
        with self._lock:
            for subject in subjects:
                self._seen.pop(subject)

    def _recent(self, subject: str, now: float) -> deque[float]:
        failures = self._seen.get(subject) or deque()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures
