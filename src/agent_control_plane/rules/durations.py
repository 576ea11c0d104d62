"""Durations written as "90s", "15m", "1h", "7d" or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        result = timedelta(seconds=value)
    else:
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h, 7d)")
        result = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    if result <= timedelta(0):
        raise ValueError(f"a duration must be positive, not {value!r}")
    return result
