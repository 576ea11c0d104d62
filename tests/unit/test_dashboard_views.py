"""What the dashboard draws, from plain data: budget bars and the daily token chart."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from agent_control_plane.dashboard import views
from agent_control_plane.models import TokenUsageRow


def test_a_bar_fills_its_share_and_changes_colour_near_the_limit() -> None:
    half = views.bar(Decimal("2.50"), Decimal("5.00"))
    assert half == views.Bar(used="2.50", limit="5.00", percent=50.0, level="ok")
    assert views.bar(8, 10) == views.Bar(used="8", limit="10", percent=80.0, level="warn")
    assert views.bar(12, 10) == views.Bar(used="12", limit="10", percent=100.0, level="full")
    assert views.bar(1500, 2_000_000) == views.Bar(
        used="1,500", limit="2,000,000", percent=0.1, level="ok"
    )
    assert views.bar(0, 0) == views.Bar(used="0", limit="0", percent=100.0, level="full")
    assert views.bar(5, None) is None


def _row(groups: dict[str, object], total_tokens: int, cost_usd: Decimal) -> TokenUsageRow:
    return TokenUsageRow(groups, 1, total_tokens, 0, total_tokens, cost_usd)


def test_the_daily_chart_sums_models_per_day_and_scales_to_the_busiest_day() -> None:
    rows = [
        _row({"day": date(2026, 11, 2), "model": "a"}, 300, Decimal("1")),
        _row({"day": "2026-11-01", "model": "a"}, 100, Decimal("0.5")),
        _row({"day": date(2026, 11, 2), "model": "b"}, 100, Decimal("2")),
    ]
    chart = views.daily_chart(rows)
    assert chart.peak == 400
    first, second = chart.columns
    assert (first.day, first.tokens, first.cost) == ("2026-11-01", 100, Decimal("0.5"))
    assert (second.day, second.tokens, second.cost) == ("2026-11-02", 400, Decimal(3))
    assert second.height == chart.height
    assert second.y == 0
    assert first.height == chart.height / 4
    assert first.x < second.x
    assert views.daily_chart([]).columns == []


def test_day_labels_from_every_dialect() -> None:
    assert views.day_label(datetime(2026, 11, 2, 5, tzinfo=UTC)) == "2026-11-02"
    assert views.day_label(date(2026, 11, 2)) == "2026-11-02"
    assert views.day_label("2026-11-02 00:00:00") == "2026-11-02"


def test_money_reads_as_dollars_and_cents_without_losing_precision() -> None:
    assert views.money(Decimal("0E-9")) == "0.00"
    assert views.money(Decimal("0.400000000")) == "0.40"
    assert views.money(Decimal("0.000180150")) == "0.00018015"
    assert views.money(10) == "10.00"
    assert views.money(None) == ""


def test_the_usage_table_has_a_column_per_model_and_newest_days_first() -> None:
    rows = [
        _row({"day": "2026-11-01", "model": "b"}, 10, Decimal("0.1")),
        _row({"day": "2026-11-02", "model": "a"}, 30, Decimal("0.2")),
        _row({"day": "2026-11-02", "model": "b"}, 10, Decimal("0.3")),
    ]
    models, days = views.usage_table(rows)
    assert models == ["a", "b"]
    assert [(d.day, d.tokens, d.total_tokens, d.cost) for d in days] == [
        ("2026-11-02", {"a": 30, "b": 10}, 40, Decimal("0.5")),
        ("2026-11-01", {"b": 10}, 10, Decimal("0.1")),
    ]
    assert [d.bar.percent for d in days if d.bar] == [100.0, 25.0]


def test_only_every_few_days_are_labelled_and_always_the_newest() -> None:
    rows = [_row({"day": f"2026-10-{day:02d}"}, day, Decimal(0)) for day in range(1, 32)]
    columns = views.daily_chart(rows).columns
    labelled = [column.day for column in columns if column.labelled]
    assert labelled[-1] == "2026-10-31"
    assert len(labelled) <= views.MAX_LABELS
    assert len(labelled) >= views.MAX_LABELS // 2
