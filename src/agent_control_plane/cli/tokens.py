"""``acp tokens report`` and ``acp budgets``."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    JsonOption,
    Target,
    emit_json,
    fail,
    opened,
    plain,
    print_table,
    targeted,
)
from agent_control_plane.models import TokenBudgetStatus

tokens_app = typer.Typer(help="Token usage reports.", no_args_is_help=True)


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise fail(f"--{name}: not an ISO 8601 date or time: {value!r}") from exc
    if moment.tzinfo is None:
        raise fail(f"--{name}: give a time zone, e.g. {value}+00:00")
    return moment


@tokens_app.command("report")
@targeted
def report(
    group_by: Annotated[
        str, typer.Option(help="Comma-separated: org,team,user,agent,model,day.")
    ] = "model",
    since: Annotated[str | None, typer.Option(help="From this ISO 8601 time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="To this ISO 8601 time (exclusive).")] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV output.")] = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Token usage and exact cost from the ledger, grouped."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    with opened(database) as cp:
        rows = cp.token_usage(groups, _moment(since, "since"), _moment(until, "until"))
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    columns = [*groups, "requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd"]
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([plain(row[c]) for c in columns])
        typer.echo(buffer.getvalue(), nl=False)
        return
    print_table(columns, ([plain(row[c]) for c in columns] for row in rows), title="Token usage")


def _or_unlimited(value: object) -> str:
    return "unlimited" if value is None else str(value)


@targeted
def budgets(
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Each token budget's current window: used, reserved, remaining."""
    with opened(database) as cp:
        status = cp.token_budget_status()
    if as_json:
        emit_json(status)
        return
    columns = ("budget", "scope", "period", "window from")
    print_table(
        (*columns, "tokens used/held/left", "cost used/held/left"),
        (_budget_row(item) for item in status),
        title="Token budgets",
    )


def _budget_row(item: TokenBudgetStatus) -> tuple[str, ...]:
    budget, used, held, left = item.budget, item.used, item.reserved, item.remaining
    return (
        str(budget.id)[:8],
        budget.scope_key,
        budget.period,
        item.window_start.isoformat(timespec="minutes"),
        f"{used.tokens}/{held.tokens}/{_or_unlimited(left.tokens)}",
        f"{used.cost_usd:.4f}/{held.cost_usd:.4f}/{_or_unlimited(left.cost_usd)}",
    )
