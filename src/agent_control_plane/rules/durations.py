"""Durations written as "90s", "15m", "1h", "7d" or a number of seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
# The longest duration ACP takes anywhere (a window, a timeout, a retention): a century,
# so that "now" minus or plus any duration is always a representable time.
MAX_DURATION = timedelta(days=36_525)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        result = _seconds(value, value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h, 7d)")
        result = _seconds(float(match.group(1)) * _UNITS[match.group(2)], value)
    else:
        raise ValueError(f"not a duration: {type(value).__name__} (use e.g. 30s, 15m, 1h, 7d)")
    if result <= timedelta(0):
        raise ValueError(f"a duration must be positive, not {value!r}")
    if result > MAX_DURATION:
        raise ValueError(f"a duration must be at most {MAX_DURATION.days} days, not {value!r}")
    return result


def _seconds(amount: float, given: object) -> timedelta:
    if not math.isfinite(amount) or abs(amount) > MAX_DURATION.total_seconds() * 2:
        raise ValueError(f"a duration must be at most {MAX_DURATION.days} days, not {given!r}")
    return timedelta(seconds=amount)
