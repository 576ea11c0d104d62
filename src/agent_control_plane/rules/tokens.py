"""Token budgets: identities, usage, prices and calendar windows (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_control_plane.errors import (
    InvalidInputError,
)
from agent_control_plane.errors import (
    UnknownModelError as UnknownModelError,
)
from agent_control_plane.rules import validation
from agent_control_plane.rules.durations import parse_duration
from agent_control_plane.rules.money import MAX_MONEY, to_money

PERIODS = ("minute", "hour", "day", "week", "month", "lifetime")
IDENTITY_FIELDS = ("org", "team", "user", "agent")
_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("1e-9")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who spends tokens. Any subset of the four fields; a budget's unset field matches any."""

    org: str | None = None
    team: str | None = None
    user: str | None = None
    agent: str | None = None

    def __post_init__(self) -> None:
        for name in IDENTITY_FIELDS:
            validation.text(getattr(self, name), name, optional=True)

    def scope_key(self) -> str:
        return "|".join(f"{name}={getattr(self, name) or '*'}" for name in IDENTITY_FIELDS)


def session_scope_key(session_id: uuid.UUID) -> str:
    return f"session={session_id}"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What a model call used. ``total_tokens``, if given, must equal input + output."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    total_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            validation.counter(getattr(self, name), name)
        if self.cached_input_tokens > self.input_tokens:
            raise InvalidInputError("cached_input_tokens", "cannot exceed input_tokens")
        expected = self.input_tokens + self.output_tokens
        if self.total_tokens is not None and self.total_tokens != expected:
            raise InvalidInputError(
                "total_tokens", f"is {self.total_tokens}, but input + output is {expected}"
            )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    def cost(self, usage: TokenUsage) -> Decimal:
        cached_rate = self.input if self.cached_input is None else self.cached_input
        fresh = usage.input_tokens - usage.cached_input_tokens
        raw = (
            fresh * self.input
            + usage.cached_input_tokens * cached_rate
            + usage.output_tokens * self.output
        ) / _MILLION
        if raw > MAX_MONEY:
            raise InvalidInputError(
                "usage",
                f"costs {raw:.2E} USD at this model's prices: more than the largest amount "
                f"ACP records ({MAX_MONEY})",
            )
        return raw.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


def _price(model: str, spec: Any) -> Price:
    if not isinstance(spec, dict) or not {"input", "output"} <= set(spec):
        raise InvalidInputError("prices", f"{model}: give input and output USD per million tokens")
    try:
        values = {
            key: to_money(str(spec[key]))
            for key in ("input", "output", "cached_input")
            if key in spec
        }
    except ValueError as exc:
        raise InvalidInputError("prices", f"{model}: {exc}") from exc
    if any(value < 0 for value in values.values()):
        raise InvalidInputError("prices", f"{model}: prices must not be negative")
    return Price(values["input"], values["output"], values.get("cached_input"))


PriceLookup = Callable[[str], "Price | None"]
FALLBACKS = ("litellm",)


@dataclass(frozen=True)
class PriceTable:
    """Prices per model. A model not in the table is priced by the fallback (``"litellm"``:
    LiteLLM's model cost map), then by the default price; with neither it is an error."""

    prices: dict[str, Price] = field(default_factory=dict)
    default: Price | None = None
    fallback: str | None = None
    # Resolves a fallback name to a lookup; injected so that these rules stay free of I/O.
    fallback_lookup: PriceLookup | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        source: PriceTable | dict[str, Any] | str | Path | None,
        *,
        fallback: str | None = None,
    ) -> PriceTable:
        if source is None:
            source = {}
        if isinstance(source, PriceTable):
            return source if fallback is None else replace(source, fallback=fallback)
        if isinstance(source, str | Path):
            # Reading the file is I/O, done in loading.py; this path is kept for old callers.
            from agent_control_plane.loading import read_price_file

            source = read_price_file(source)
        if not isinstance(source, dict):
            raise InvalidInputError("prices", "a price table is a mapping of model to prices")
        default = source.get("default")
        chosen = fallback if fallback is not None else source.get("fallback")
        if chosen is not None and chosen not in FALLBACKS:
            raise InvalidInputError(
                "fallback", f"{chosen!r} is not a price source; known: {', '.join(FALLBACKS)}"
            )
        prices = {
            model: _price(model, spec)
            for model, spec in source.items()
            if model not in ("default", "fallback")
        }
        return cls(prices, None if default is None else _price("default", default), chosen)

    def price(self, model: str) -> Price:
        found = self.prices.get(model)
        if found is None and self.fallback is not None and self.fallback_lookup is not None:
            found = self.fallback_lookup(model)
        if found is None:
            found = self.default
        if found is None:
            source = f" nor in the {self.fallback} cost map" if self.fallback else ""
            raise UnknownModelError(
                "model",
                f"no price for {model!r} in the price table{source}: add it or set a default",
            )
        return found


def soft_limits_reached(
    limits: dict[str, int | Decimal | None],
    consumed: dict[str, int | Decimal],
    ratio: Decimal | None,
) -> list[str]:
    """The limits whose consumption (used + held) is at or past ``ratio`` of the limit."""
    if ratio is None:
        return []
    return [
        name
        for name, limit in limits.items()
        if limit is not None and limit > 0 and consumed[name] >= limit * ratio
    ]


ROLLING_PREFIX = "rolling:"
ROLLING_BUCKETS = 24


def rolling_length(period: str) -> timedelta | None:
    """The length of a rolling period ("rolling:24h"), None for a calendar period."""
    validation.required_text(period, "period")
    if not period.startswith(ROLLING_PREFIX):
        return None
    try:
        length = parse_duration(period[len(ROLLING_PREFIX) :])
    except ValueError as exc:
        raise InvalidInputError("period", str(exc)) from None
    if length < timedelta(minutes=1):
        raise InvalidInputError("period", "a rolling window is at least one minute long")
    return length


def parse_period(period: str) -> str:
    validation.required_text(period, "period")
    if period not in PERIODS and rolling_length(period) is None:
        raise InvalidInputError(
            "period",
            f"must be one of {', '.join(PERIODS)} or rolling:<duration> such as rolling:24h "
            f"(got {period!r})",
        )
    return period


def rolling_bucket(length: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """The bucket (1/24 of the window, aligned to the epoch) holding ``now``, and the start
    of the oldest bucket still counted. Counting one whole bucket more than the window is
    conservative: usage leaves the window up to one bucket late, never early."""
    bucket = length / ROLLING_BUCKETS
    since_epoch = now - EPOCH
    start = EPOCH + bucket * (since_epoch // bucket)
    return start, start - length


def parse_timezone(name: str) -> ZoneInfo:
    validation.required_text(name, "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError("timezone", f"unknown time zone {name!r}") from None


def window_start(period: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The start (as aware UTC) of the calendar window of ``period`` holding ``now``, with
    days, weeks (from Monday) and months counted in ``zone``; for a rolling period, the
    start of the current bucket."""
    length = rolling_length(period)
    if length is not None:
        return rolling_bucket(length, now)[0]
    if period == "lifetime":
        return EPOCH
    local = now.astimezone(zone)
    if period == "minute":
        start = local.replace(second=0, microsecond=0)
    elif period == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "week":
            day = day - timedelta(days=day.weekday())
        elif period == "month":
            day = day.replace(day=1)
        # Re-attach the zone: midnight may have another UTC offset than ``now`` (DST).
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start.astimezone(UTC)
