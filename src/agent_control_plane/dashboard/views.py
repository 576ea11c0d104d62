"""What the pages draw, computed from plain data (no I/O): budget bars and the token chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from agent_control_plane.models import TokenUsageRow


@dataclass(frozen=True, slots=True)
class Bar:
    """A filled share of a limit, for a CSS bar."""

    used: str
    limit: str
    percent: float  # 0..100, for the bar's width
    level: str  # "ok", "warn" (>= 80 %) or "full" (>= 100 %)


def bar(used: Decimal | int, limit: Decimal | int | None) -> Bar | None:
    """How full ``used`` makes ``limit``; None when there is no limit to fill."""
    if limit is None:
        return None
    if limit <= 0:
        share = 1.0 if used > 0 or limit == 0 else 0.0
    else:
        share = float(Decimal(used) / Decimal(limit))
    percent = round(min(max(share, 0.0), 1.0) * 100, 1)
    level = "full" if share >= 1 else "warn" if share >= 0.8 else "ok"
    return Bar(used=_plain(used), limit=_plain(limit), percent=percent, level=level)


def _plain(value: Decimal | int) -> str:
    return money(value) if isinstance(value, Decimal) else f"{value:,}"


def money(value: Decimal | int | None) -> str:
    """USD with at least two decimals and no trailing zeros beyond them (0E-9 reads 0.00)."""
    if value is None:
        return ""
    text = format(Decimal(value).quantize(_NANO).normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


_NANO = Decimal("0.000000001")


@dataclass(frozen=True, slots=True)
class UsageDay:
    """One row of the usage table: a day's tokens per model, its total and its cost."""

    day: str
    tokens: dict[str, int]
    total_tokens: int
    cost: Decimal
    bar: Bar | None


def usage_table(rows: list[TokenUsageRow]) -> tuple[list[str], list[UsageDay]]:
    """The models (columns) and the days (rows, newest first) of a day x model report."""
    models = sorted({str(row["model"]) for row in rows})
    days: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = days.setdefault(day_label(row["day"]), {"tokens": {}, "cost": Decimal(0)})
        model = str(row["model"])
        day["tokens"][model] = day["tokens"].get(model, 0) + int(row["total_tokens"])
        day["cost"] += Decimal(row["cost_usd"])
    peak = max((sum(day["tokens"].values()) for day in days.values()), default=0)
    table = [
        UsageDay(
            day=label,
            tokens=day["tokens"],
            total_tokens=sum(day["tokens"].values()),
            cost=day["cost"],
            bar=bar(sum(day["tokens"].values()), peak),
        )
        for label, day in sorted(days.items(), reverse=True)
    ]
    return models, table


@dataclass(frozen=True, slots=True)
class Column:
    """One day's bar in the token chart (SVG user units)."""

    day: str
    tokens: int
    cost: Decimal
    x: float
    y: float
    width: float
    height: float
    labelled: bool  # only every few days carry a date under the axis, so labels never overlap


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    columns: list[Column]
    peak: int


CHART_WIDTH = 1080
CHART_HEIGHT = 180
MAX_LABELS = 16


def daily_chart(rows: list[TokenUsageRow]) -> Chart:
    """Total tokens per day as SVG bars, oldest day on the left, scaled to the busiest day."""
    totals: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        day = day_label(row["day"])
        tokens, cost = totals.get(day, (0, Decimal(0)))
        totals[day] = (tokens + int(row["total_tokens"]), cost + Decimal(row["cost_usd"]))
    days = sorted(totals)
    peak = max((tokens for tokens, _ in totals.values()), default=0)
    slot = CHART_WIDTH / max(len(days), 1)
    width = max(slot * 0.7, 1.0)
    every = -(-len(days) // MAX_LABELS) or 1
    columns = []
    for index, day in enumerate(days):
        tokens, cost = totals[day]
        height = 0.0 if peak == 0 else CHART_HEIGHT * tokens / peak
        columns.append(
            Column(
                day=day,
                tokens=tokens,
                cost=cost,
                x=round(index * slot + (slot - width) / 2, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(width, 2),
                height=round(height, 2),
                labelled=(len(days) - 1 - index) % every == 0,
            )
        )
    return Chart(width=CHART_WIDTH, height=CHART_HEIGHT, columns=columns, peak=peak)


def day_label(value: object) -> str:
    """The ledger's day as YYYY-MM-DD, whatever type the dialect returned it as."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]
