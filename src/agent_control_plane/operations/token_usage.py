"""Token usage: the ledger, usage made without a reservation (record_usage), and
the usage report."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.boundary import InDoubt
from agent_control_plane.errors import (
    InvalidInputError,
    TokenBudgetExhausted,
)
from agent_control_plane.errors import (
    ReservationNotFoundError as ReservationNotFoundError,
)
from agent_control_plane.errors import (
    TokenBudgetNotFoundError as TokenBudgetNotFoundError,
)
from agent_control_plane.models import (
    TokenUsageRow,
    UsageRecord,
)
from agent_control_plane.operations.once import run_once, scope
from agent_control_plane.operations.token_budgets import (
    applicable,
    exhausted,
    identity_argument,
    soft_warnings,
    usage_argument,
)
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import recovery, validation
from agent_control_plane.rules import token_budgets as budget_rules
from agent_control_plane.rules.tokens import (
    Identity,
    TokenUsage,
    parse_timezone,
    rolling_bucket,
    rolling_length,
    window_start,
)
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import tokens as token_store
from agent_control_plane.store.idempotency import Claim


def ledger(
    connection: Connection,
    runtime: Runtime,
    reservation_id: uuid.UUID | None,
    model: str,
    usage: TokenUsage,
    cost: Decimal,
    now: datetime,
    ids: dict[str, Any],
) -> UsageRecord:
    entry = token_store.insert_ledger(
        connection,
        runtime,
        {
            "reservation_id": reservation_id,
            **ids,
            "model": model,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "total_tokens": usage.total,
            "cost_usd": cost,
            "created_at": now,
        },
    )
    return UsageRecord(entry, model, usage.total, cost, reservation_id)


def record_usage(
    connection: Connection,
    runtime: Runtime,
    identity: Identity,
    model: str,
    usage: TokenUsage,
    *,
    session_id: uuid.UUID | str | None = None,
    idempotency_key: str | None = None,
) -> UsageRecord:
    """Record usage made without a reservation. The ledger and windows are written first;
    if a budget is now exceeded, TokenBudgetExhausted is raised after that commit, and
    later reservations are refused."""
    identity, usage = identity_argument(identity), usage_argument(usage)
    model = validation.required_text(model, "model")
    cost = runtime.prices.price(model).cost(usage)
    sid = None if session_id is None else validation.session_id(session_id)
    # Usage is charged without a hold: a key of ACP's own is recorded when the caller
    # gives none, so a call whose COMMIT failed can be repeated without counting twice.
    key = validation.idempotency_key(idempotency_key) or f"{recovery.PREFIX}usage:{uuid.uuid4()}"
    request = [
        identity.scope_key(),
        model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        str(sid),
    ]
    over: list[TokenBudgetExhausted] = []
    warnings: list[str] = []

    def work(_claim: Claim | None) -> tuple[UsageRecord, dict[str, Any]]:
        now = runtime.clock()
        ids = {f"{n}_id": getattr(identity, n) for n in ("org", "team", "user", "agent")}
        record = ledger(
            connection, runtime, None, model, usage, cost, now, {**ids, "session_id": sid}
        )
        for budget in applicable(connection, runtime, identity, sid):
            start = window_start(budget.period, now, parse_timezone(budget.timezone))
            length = rolling_length(budget.period)
            if length is not None:
                token_store.lock_budget(connection, runtime, budget.id)
            token_store.ensure_window(connection, runtime, budget.id, start, now)
            token_store.move(
                connection,
                runtime,
                budget.id,
                start,
                release_tokens=0,
                release_cost=Decimal(0),
                release_requests=0,
                use_tokens=usage.total,
                use_cost=cost,
                use_requests=1,
                now=now,
            )
            since = start if length is None else rolling_bucket(length, now)[1]
            totals = token_store.rolling_totals(connection, runtime, budget.id, since)
            warnings.extend(soft_warnings(budget, totals))
            if budget_rules.over(budget, totals, 0, Decimal(0), 0):
                over.append(
                    exhausted(connection, runtime, budget, since, usage.total, cost, totals)
                )
        return record, {
            "id": record.id,
            "model": model,
            "total_tokens": usage.total,
            "cost_usd": str(cost),
        }

    def replay(data: dict[str, Any]) -> UsageRecord:
        return UsageRecord(
            int(data["id"]),
            data["model"],
            int(data["total_tokens"]),
            Decimal(data["cost_usd"]),
            None,
        )

    record = run_once(
        connection,
        runtime,
        work,
        replay,
        scope=scope("usage", identity.org),
        key=key,
        request=request,
        look_first=idempotency_key is not None,
        in_doubt=lambda _record: InDoubt(key=key, rerun={"idempotency_key": key}),
    )
    if over:
        raise over[0]
    return replace(record, warnings=tuple(warnings)) if warnings else record


GROUPS = ("org", "team", "user", "agent", "model", "day")


@repeatable
def token_usage(
    connection: Connection,
    runtime: Runtime,
    group_by: list[str] | tuple[str, ...] = ("model",),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TokenUsageRow]:
    """Usage from the ledger, summed by ``group_by`` (org, team, user, agent, model, day)
    over [since, until): requests, input/output/total tokens and exact cost."""
    if not isinstance(group_by, list | tuple):
        raise InvalidInputError("group_by", f"a list chosen from {', '.join(GROUPS)}")
    groups = list(group_by)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise InvalidInputError("group_by", f"choose from {', '.join(GROUPS)}")
    validation.aware(since, "since")
    validation.aware(until, "until")
    with connection.begin():
        return token_store.usage_report(connection, runtime, groups, since, until)
