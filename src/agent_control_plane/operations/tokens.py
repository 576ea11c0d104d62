"""Token budgets: hard ceilings with reserve -> settle, and a ledger that never loses usage."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.boundary import NOT_COMMITTED, InDoubt
from agent_control_plane.errors import (
    IdempotencyConflictError,
    InvalidInputError,
    ModelNotAllowedError,
    TokenBudgetExhausted,
    TokenBudgetExistsError,
)
from agent_control_plane.errors import (
    ReservationNotFoundError as ReservationNotFoundError,
)
from agent_control_plane.errors import (
    TokenBudgetNotFoundError as TokenBudgetNotFoundError,
)
from agent_control_plane.models import (
    Reservation,
    TokenAmounts,
    TokenBudget,
    TokenBudgetStatus,
    TokenLimits,
    TokenUsageRow,
    UsageRecord,
)
from agent_control_plane.operations.batches import drain
from agent_control_plane.operations.once import run_once, scope
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import recovery, validation
from agent_control_plane.rules.tokens import (
    Identity,
    TokenUsage,
    parse_period,
    parse_timezone,
    rolling_bucket,
    rolling_length,
    session_scope_key,
    soft_limits_reached,
    window_start,
)
from agent_control_plane.runtime import Runtime
from agent_control_plane.statuses import ReservationStatus
from agent_control_plane.store import tokens as token_store
from agent_control_plane.store.doubt import committed_reservation
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.settle_pg import settle_in_one_statement
from agent_control_plane.store.tokens import Finished

logger = logging.getLogger("agent_control_plane.tokens")

DEFAULT_TTL = timedelta(minutes=10)
_LIMITS = (
    "max_tokens",
    "max_cost_usd",
    "max_requests",
    "allowed_models",
    "denied_models",
    "soft_limit_ratio",
)


def _limits(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("max_tokens", "max_requests"):
        if name in values:
            out[name] = None if values[name] is None else validation.counter(values[name], name)
    if "max_cost_usd" in values:
        value = values["max_cost_usd"]
        out["max_cost_usd"] = None if value is None else validation.money(value, "max_cost_usd")
    for name in ("allowed_models", "denied_models"):
        if name in values:
            models = values[name]
            if models is not None and not isinstance(models, list | tuple | set | frozenset):
                raise InvalidInputError(name, "must be a list of model names")
            out[name] = (
                None
                if models is None
                else sorted({validation.required_text(model, name) for model in models})
            )
    if "soft_limit_ratio" in values:
        ratio = values["soft_limit_ratio"]
        out["soft_limit_ratio"] = None if ratio is None else _ratio(ratio)
    return out


def _ratio(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidInputError("soft_limit_ratio", "must be a number in (0, 1]")
    try:
        ratio = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInputError("soft_limit_ratio", "must be a number in (0, 1]") from None
    if not ratio.is_finite() or not 0 < ratio <= 1:
        raise InvalidInputError("soft_limit_ratio", "must be in (0, 1]")
    return ratio


def _identity(value: Any) -> Identity:
    if not isinstance(value, Identity):
        raise InvalidInputError(
            "identity", f"must be an Identity(org=…, team=…, …), not a {type(value).__name__}"
        )
    return value


def _usage(value: Any) -> TokenUsage:
    if not isinstance(value, TokenUsage):
        raise InvalidInputError(
            "usage", f"must be a TokenUsage(input_tokens=…, …), not a {type(value).__name__}"
        )
    return value


def set_token_budget(
    connection: Connection,
    runtime: Runtime,
    scope_of: Identity | uuid.UUID,
    period: str,
    *,
    max_tokens: int | None = None,
    max_cost_usd: Decimal | int | str | None = None,
    max_requests: int | None = None,
    allowed_models: list[str] | None = None,
    denied_models: list[str] | None = None,
    soft_limit_ratio: Decimal | float | None = None,
    timezone: str = "UTC",
) -> TokenBudget:
    """Create the budget of ``scope_of`` (an Identity, or a session id) for ``period``
    (minute, hour, day, week, month or lifetime, counted in ``timezone``). One budget per
    scope and period: a second raises TokenBudgetExistsError (use update_token_budget)."""
    limits = _limits(
        {
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost_usd,
            "max_requests": max_requests,
            "allowed_models": allowed_models,
            "denied_models": denied_models,
            "soft_limit_ratio": soft_limit_ratio,
        }
    )
    parse_period(period)
    parse_timezone(timezone)
    if isinstance(scope_of, Identity):
        key = scope_of.scope_key()
        owner = {f"{n}_id": getattr(scope_of, n) for n in ("org", "team", "user", "agent")}
        owner["session_id"] = None
    else:
        session_id = validation.session_id(scope_of)
        key = session_scope_key(session_id)
        owner = {
            "org_id": None,
            "team_id": None,
            "user_id": None,
            "agent_id": None,
            "session_id": session_id,
        }
    budget_id = uuid.uuid4()
    try:
        with connection.begin():
            now = runtime.clock()
            token_store.insert_budget(
                connection,
                runtime,
                {
                    "id": budget_id,
                    "scope_key": key,
                    "period": period,
                    "timezone": timezone,
                    **owner,
                    **limits,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            budget = token_store.get_budget(connection, runtime, budget_id)
    except IntegrityError as error:
        raise TokenBudgetExistsError(
            f"a {period} budget for {key} exists already: change it with update_token_budget"
        ) from error
    assert budget is not None
    return budget


def update_token_budget(
    connection: Connection, runtime: Runtime, /, budget_id: uuid.UUID | str, **limits: Any
) -> TokenBudget:
    """Change a budget's limits or model lists (keyword arguments as in set_token_budget)."""
    unknown = set(limits) - set(_LIMITS)
    if unknown:
        raise InvalidInputError("limits", f"cannot change {sorted(unknown)}")
    values = _limits(limits)
    bid = validation.identifier(budget_id, "budget_id", "a token budget")
    with connection.begin():
        now = runtime.clock()
        if not token_store.update_budget(connection, runtime, bid, {**values, "updated_at": now}):
            raise TokenBudgetNotFoundError(f"no token budget {bid}")
        budget = token_store.get_budget(connection, runtime, bid)
    assert budget is not None
    return budget


def delete_token_budget(
    connection: Connection, runtime: Runtime, budget_id: uuid.UUID | str
) -> bool:
    """Delete a budget and its windows; False if there was none."""
    with connection.begin():
        bid = validation.identifier(budget_id, "budget_id", "a token budget")
        return token_store.delete_budget(connection, runtime, bid)


@repeatable
def list_token_budgets(connection: Connection, runtime: Runtime) -> list[TokenBudget]:
    """Every token budget."""
    with connection.begin():
        return token_store.list_budgets(connection, runtime)


def _applicable(
    connection: Connection, runtime: Runtime, identity: Identity, session_id: uuid.UUID | None
) -> list[TokenBudget]:
    fields = {name: getattr(identity, name) for name in ("org", "team", "user", "agent")}
    return token_store.candidates(connection, runtime, fields, session_id)


def _budgets_to_hold(
    connection: Connection,
    runtime: Runtime,
    identity: Identity,
    session_id: uuid.UUID | None,
    model: str,
    tokens: int,
    cost: Decimal,
    now: datetime,
) -> tuple[list[TokenBudget], datetime | None]:
    """The budgets a reservation must hold, in id order, with the model checked against
    them; and the window start of the first one if it is already held.

    The budgets read for an identity are remembered with the budget epoch they were read
    at. While the epoch is unchanged they are still exactly the budgets that apply, so
    the first hold itself checks the epoch instead of reading the budgets again. If that
    hold does not apply (the budgets changed, the window is new or full), nothing was
    written and the budgets are read afresh.
    """
    key = (identity.org, identity.team, identity.user, identity.agent, session_id)
    remembered = runtime.memory.budgets(key)
    current: int | None = None
    # A model the remembered budgets refuse is refused only by budgets read afresh.
    if remembered is not None and _model_refusal(remembered[1], model) is None:
        epoch, budgets = remembered
        first = budgets[0] if budgets else None
        if first is not None and rolling_length(first.period) is None:
            start = window_start(first.period, now, parse_timezone(first.timezone))
            if token_store.hold(connection, runtime, first, start, tokens, cost, now, epoch=epoch):
                return budgets, start
        else:
            current = token_store.budget_epoch(connection, runtime)
            if current == epoch:
                return budgets, None
    # The epoch first: budgets read after it are at least as new as it says.
    if current is None:
        current = token_store.budget_epoch(connection, runtime)
    budgets = _applicable(connection, runtime, identity, session_id)
    if current is not None:
        runtime.memory.remember_budgets(key, current, budgets)
    _check_model(budgets, model)
    return budgets, None


def _model_refusal(budgets: list[TokenBudget], model: str) -> str | None:
    for budget in budgets:
        if budget.denied_models and model in budget.denied_models:
            return f"model {model!r} is denied by token budget {budget.id}"
        if budget.allowed_models is not None and model not in budget.allowed_models:
            return f"model {model!r} is not among the models token budget {budget.id} allows"
    return None


def _check_model(budgets: list[TokenBudget], model: str) -> None:
    refusal = _model_refusal(budgets, model)
    if refusal is not None:
        raise ModelNotAllowedError(refusal)


def _over(budget: TokenBudget, totals: Any, tokens: int, cost: Decimal, requests: int) -> bool:
    """Whether used + reserved + this passes any of the budget's limits."""
    return (
        (
            budget.max_tokens is not None
            and totals.tokens_used + totals.tokens_reserved + tokens > budget.max_tokens
        )
        or (
            budget.max_cost_usd is not None
            and totals.cost_used + totals.cost_reserved + cost > budget.max_cost_usd
        )
        or (
            budget.max_requests is not None
            and totals.requests_used + totals.requests_reserved + requests > budget.max_requests
        )
    )


def _hold_rolling(
    connection: Connection,
    runtime: Runtime,
    budget: TokenBudget,
    length: timedelta,
    tokens: int,
    cost: Decimal,
    now: datetime,
) -> list[str]:
    """Hold on a rolling window: the budget row lock serialises its holds, so the sum over
    its buckets cannot change between the check and the hold."""
    current, since = rolling_bucket(length, now)
    token_store.lock_budget(connection, runtime, budget.id)
    totals = token_store.rolling_totals(connection, runtime, budget.id, since)
    if _over(budget, totals, tokens, cost, 1):
        raise _exhausted(connection, runtime, budget, since, tokens, cost, totals)
    token_store.ensure_window(connection, runtime, budget.id, current, now)
    token_store.add_hold(connection, runtime, budget.id, current, tokens, cost, now)
    return [str(budget.id), current.isoformat()]


def _window_since(budget: TokenBudget, now: datetime) -> datetime:
    """Where the budget's current window starts (for a rolling one, its oldest bucket)."""
    length = rolling_length(budget.period)
    if length is not None:
        return rolling_bucket(length, now)[1]
    return window_start(budget.period, now, parse_timezone(budget.timezone))


def _window_totals(
    connection: Connection, runtime: Runtime, budget: TokenBudget, now: datetime
) -> Any:
    return token_store.rolling_totals(connection, runtime, budget.id, _window_since(budget, now))


def _consumed(totals: Any) -> dict[str, int | Decimal]:
    return {
        "tokens": int(totals.tokens_used + totals.tokens_reserved),
        "cost_usd": totals.cost_used + totals.cost_reserved,
        "requests": int(totals.requests_used + totals.requests_reserved),
    }


def _budget_limits(budget: TokenBudget) -> dict[str, int | Decimal | None]:
    return {
        "tokens": budget.max_tokens,
        "cost_usd": budget.max_cost_usd,
        "requests": budget.max_requests,
    }


def _soft_warnings(budget: TokenBudget, totals: Any) -> list[str]:
    """One line per limit of ``budget`` that used + held has taken past its soft limit;
    each is also logged, so an operator sees it even if the caller ignores it."""
    if budget.soft_limit_ratio is None or totals is None:
        return []
    consumed = _consumed(totals)
    limits = _budget_limits(budget)
    warnings = [
        f"token budget {budget.id} ({budget.scope_key}, {budget.period}): {name} "
        f"{consumed[name]} of {limits[name]} is past its soft limit "
        f"({budget.soft_limit_ratio:.0%})"
        for name in soft_limits_reached(limits, consumed, budget.soft_limit_ratio)
    ]
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _exhausted(
    connection: Connection,
    runtime: Runtime,
    budget: TokenBudget,
    start: datetime,
    tokens: int,
    cost: Decimal,
    totals: Any = None,
) -> TokenBudgetExhausted:
    row = (
        totals if totals is not None else token_store.window(connection, runtime, budget.id, start)
    )
    used = (
        "no usage yet"
        if row is None
        else (
            f"tokens {row.tokens_used}+{row.tokens_reserved} held, cost ${row.cost_used}"
            f"+${row.cost_reserved} held, requests {row.requests_used}+{row.requests_reserved} held"
        )
    )
    limit = (
        f"max_tokens={budget.max_tokens} max_cost_usd={budget.max_cost_usd} "
        f"max_requests={budget.max_requests}"
    )
    return TokenBudgetExhausted(
        f"token budget {budget.id} ({budget.scope_key}, {budget.period} window from "
        f"{start.isoformat()}) cannot take {tokens} tokens / ${cost}: {limit}; {used}",
        budget_id=str(budget.id),
        window_start=start.isoformat(),
        limit=limit,
        usage=used,
    )


def reserve_tokens(
    connection: Connection,
    runtime: Runtime,
    identity: Identity,
    model: str,
    *,
    input_tokens: int,
    max_output_tokens: int,
    session_id: uuid.UUID | str | None = None,
    ttl: timedelta = DEFAULT_TTL,
    idempotency_key: str | None = None,
    action_tier: str | None = None,
) -> Reservation:
    """Price the worst case (input + max output) and hold it against every matching budget,
    all or none, in one transaction; raise TokenBudgetExhausted naming the budget, window,
    limit and usage, or ModelNotAllowedError, holding nothing. ``action_tier`` (e.g.
    "auto_approve") selects which model tiers the model policy allows."""
    identity = _identity(identity)
    model = validation.required_text(model, "model")
    if runtime.model_policy is not None:
        refusal = runtime.model_policy.refusal(model, identity, action_tier)
        if refusal is not None:
            raise ModelNotAllowedError(refusal)
    worst = TokenUsage(
        validation.counter(input_tokens, "input_tokens"),
        validation.counter(max_output_tokens, "max_output_tokens"),
    )
    cost = runtime.prices.price(model).cost(worst)
    sid = None if session_id is None else validation.session_id(session_id)
    ttl = validation.positive_duration(ttl, "ttl")
    key = validation.idempotency_key(idempotency_key)
    request = [identity.scope_key(), model, worst.total, str(sid), ttl.total_seconds()]
    earlier = recovery.parse_reservation_key(key)
    if earlier is not None:
        found = _recovered_reservation(connection, runtime, earlier, model, worst.total)
        if found is not None:
            return found
    inserted: dict[str, Any] = {}

    def work(_claim: Claim | None) -> tuple[Reservation, dict[str, Any]]:
        now = runtime.clock()
        budgets, held_first = _budgets_to_hold(
            connection, runtime, identity, sid, model, worst.total, cost, now
        )
        holds: list[list[str]] = []
        warnings: list[str] = []
        for budget in budgets:
            length = rolling_length(budget.period)
            if held_first is not None and budget is budgets[0]:
                holds.append([str(budget.id), held_first.isoformat()])
            elif length is not None:
                holds.append(
                    _hold_rolling(connection, runtime, budget, length, worst.total, cost, now)
                )
            else:
                start = window_start(budget.period, now, parse_timezone(budget.timezone))
                held = token_store.hold(connection, runtime, budget, start, worst.total, cost, now)
                if not held:  # the window may not exist yet: create it, then try once more
                    token_store.ensure_window(connection, runtime, budget.id, start, now)
                    held = token_store.hold(
                        connection, runtime, budget, start, worst.total, cost, now
                    )
                if not held:
                    raise _exhausted(connection, runtime, budget, start, worst.total, cost)
                holds.append([str(budget.id), start.isoformat()])
            if budget.soft_limit_ratio is not None:  # read only where a soft limit is set
                totals = _window_totals(connection, runtime, budget, now)
                warnings.extend(_soft_warnings(budget, totals))
        reservation_id = uuid.uuid4()
        expires_at = now + ttl
        inserted.update(
            {
                "id": reservation_id,
                **{f"{n}_id": getattr(identity, n) for n in ("org", "team", "user", "agent")},
                "session_id": sid,
                "model": model,
                "input_tokens": worst.input_tokens,
                "max_output_tokens": worst.output_tokens,
                "reserved_tokens": worst.total,
                "reserved_cost": cost,
                "holds": holds,
                "status": "held",
                "expires_at": expires_at,
                "created_at": now,
            }
        )
        token_store.insert_reservation(connection, runtime, inserted)
        reservation = Reservation(
            id=reservation_id,
            model=model,
            session_id=sid,
            input_tokens=worst.input_tokens,
            max_output_tokens=worst.output_tokens,
            reserved_tokens=worst.total,
            reserved_cost=cost,
            status=ReservationStatus.HELD,
            expires_at=expires_at,
            holds=holds,
            warnings=tuple(warnings),
            **{f"{n}_id": getattr(identity, n) for n in ("org", "team", "user", "agent")},
        )
        return reservation, {"reservation_id": str(reservation_id)}

    def replay(data: dict[str, Any]) -> Reservation:
        with connection.begin():
            found = token_store.get_reservation(
                connection, runtime, uuid.UUID(data["reservation_id"])
            )
        assert found is not None
        return found

    def in_doubt(reservation: Reservation) -> InDoubt:
        # No key of its own: the reservation row is what shows that it committed.
        def witness(fresh: Connection) -> Reservation:
            row = committed_reservation(fresh, runtime, inserted)
            return reservation if row is not None else NOT_COMMITTED

        return InDoubt(key=recovery.reservation_key(reservation.id), witness=witness)

    return run_once(
        connection,
        runtime,
        work,
        replay,
        scope=scope("reserve", identity.org),
        key=key,
        request=request,
        in_doubt=None if key is not None else in_doubt,
    )


def _recovered_reservation(
    connection: Connection, runtime: Runtime, reservation_id: uuid.UUID, model: str, tokens: int
) -> Reservation | None:
    """The reservation a key from OutcomeUnknownError names, if it committed; None if it
    did not (the call is then made anew under that key)."""
    with connection.begin():
        found = token_store.get_reservation(connection, runtime, reservation_id)
    if found is None:
        return None
    if found.model != model or found.reserved_tokens != tokens:
        raise IdempotencyConflictError(
            f"reservation {reservation_id} was made for {found.reserved_tokens} tokens of "
            f"{found.model!r}, not this request; use a new key for a new request"
        )
    return found


def _reservation_id(reservation: Reservation | uuid.UUID | str) -> uuid.UUID:
    if isinstance(reservation, Reservation):
        return reservation.id
    return validation.identifier(reservation, "reservation", "a reservation")


def _unhold(
    connection: Connection,
    runtime: Runtime,
    reservation: Finished,
    usage: TokenUsage | None,
    cost: Decimal,
    now: datetime,
) -> None:
    for budget_id, start in reservation.holds:
        token_store.move(
            connection,
            runtime,
            uuid.UUID(budget_id),
            datetime.fromisoformat(start),
            release_tokens=reservation.reserved_tokens,
            release_cost=reservation.reserved_cost,
            release_requests=1,
            use_tokens=0 if usage is None else usage.total,
            use_cost=cost if usage is not None else Decimal(0),
            use_requests=0 if usage is None else 1,
            now=now,
        )


@repeatable
def settle(
    connection: Connection,
    runtime: Runtime,
    reservation: Reservation | uuid.UUID | str,
    usage: TokenUsage,
) -> UsageRecord:
    """Write the ledger row and replace the hold with the actual usage, in one transaction.
    Settling again with the same usage returns the same record and counts nothing twice."""
    rid = _reservation_id(reservation)
    usage = _usage(usage)
    if runtime.capabilities.writes_in_one_statement and isinstance(reservation, Reservation):
        cost = runtime.prices.price(reservation.model).cost(usage)
        record = settle_in_one_statement(
            connection, runtime, rid, reservation.model, usage, cost, runtime.clock()
        )
        if record is not None:
            return record
    with connection.begin():
        now = runtime.clock()
        settled = token_store.finish_reservation(connection, runtime, rid, "settled", now)
        if settled is None:
            return _already_settled(connection, runtime, rid, usage)
        cost = runtime.prices.price(settled.model).cost(usage)
        _unhold(connection, runtime, settled, usage, cost, now)
        return _ledger(
            connection, runtime, settled.id, settled.model, usage, cost, now, settled.ids
        )


def _already_settled(
    connection: Connection, runtime: Runtime, rid: uuid.UUID, usage: TokenUsage
) -> UsageRecord:
    found = token_store.get_reservation(connection, runtime, rid)
    if found is None:
        raise ReservationNotFoundError(f"no token reservation {rid}")
    row = token_store.ledger_for(connection, runtime, rid)
    if found.status != "settled" or row is None:
        raise InvalidInputError("reservation", f"reservation {rid} is {found.status}, not held")
    if row.total_tokens != usage.total or row.input_tokens != usage.input_tokens:
        raise IdempotencyConflictError(f"reservation {rid} was settled with other usage")
    return UsageRecord(row.id, row.model, row.total_tokens, row.cost_usd, row.reservation_id)


def _ledger(
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


def get_reservation(
    connection: Connection, runtime: Runtime, reservation: Reservation | uuid.UUID | str
) -> Reservation:
    """The reservation as it stands now (ReservationNotFoundError if there is none)."""
    rid = _reservation_id(reservation)
    with connection.begin():
        found = token_store.get_reservation(connection, runtime, rid)
    if found is None:
        raise ReservationNotFoundError(f"no token reservation {rid}")
    return found


@repeatable
def release(
    connection: Connection, runtime: Runtime, reservation: Reservation | uuid.UUID | str
) -> Reservation:
    """Drop the hold (the call failed); releasing twice changes nothing."""
    rid = _reservation_id(reservation)
    with connection.begin():
        now = runtime.clock()
        finished = token_store.finish_reservation(connection, runtime, rid, "released", now)
        if finished is not None:
            _unhold(connection, runtime, finished, None, Decimal(0), now)
        found = token_store.get_reservation(connection, runtime, rid)
    if found is None:
        raise ReservationNotFoundError(f"no token reservation {rid}")
    return found


def release_expired_batch(connection: Connection, runtime: Runtime, limit: int) -> int:
    """Release up to ``limit`` held reservations past their ttl, in one transaction."""
    with connection.begin():
        now = runtime.clock()
        finished = [
            done
            for rid in token_store.expired_held(connection, runtime, now, limit)
            if (done := token_store.finish_reservation(connection, runtime, rid, "expired", now))
        ]
        # Many holds share a window: release windows in one global order (budget id, as
        # reserve_tokens holds them), so concurrent sweeps never wait on each other in a cycle.
        releases = sorted(
            (
                (uuid.UUID(budget_id), datetime.fromisoformat(start), reservation)
                for reservation in finished
                for budget_id, start in reservation.holds
            ),
            key=lambda item: (item[0], item[1]),
        )
        for budget_id, start, reservation in releases:
            token_store.move(
                connection,
                runtime,
                budget_id,
                start,
                release_tokens=reservation.reserved_tokens,
                release_cost=reservation.reserved_cost,
                release_requests=1,
                use_tokens=0,
                use_cost=Decimal(0),
                use_requests=0,
                now=now,
            )
    return len(finished)


@repeatable
def release_expired_holds(connection: Connection, runtime: Runtime) -> int:
    """Release every held reservation past its ttl; safe from many processes at once."""
    return drain(lambda limit: release_expired_batch(connection, runtime, limit))


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
    identity, usage = _identity(identity), _usage(usage)
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
        record = _ledger(
            connection, runtime, None, model, usage, cost, now, {**ids, "session_id": sid}
        )
        for budget in _applicable(connection, runtime, identity, sid):
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
            warnings.extend(_soft_warnings(budget, totals))
            if _over(budget, totals, 0, Decimal(0), 0):
                over.append(
                    _exhausted(connection, runtime, budget, since, usage.total, cost, totals)
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


N = TypeVar("N", int, Decimal)


def _left(limit: N | None, consumed: N) -> N | None:
    """What is left of ``limit`` after ``consumed``, never below zero."""
    return None if limit is None else limit - min(consumed, limit)


@repeatable
def token_budget_status(connection: Connection, runtime: Runtime) -> list[TokenBudgetStatus]:
    """Each budget with its current window: used, reserved and remaining per limit."""
    with connection.begin():
        now = runtime.clock()
        report = []
        for budget in token_store.list_budgets(connection, runtime):
            start = _window_since(budget, now)
            row = token_store.rolling_totals(connection, runtime, budget.id, start)
            used = TokenAmounts(
                tokens=0 if row is None else int(row.tokens_used),
                cost_usd=Decimal(0) if row is None else row.cost_used,
                requests=0 if row is None else int(row.requests_used),
            )
            reserved = TokenAmounts(
                tokens=0 if row is None else int(row.tokens_reserved),
                cost_usd=Decimal(0) if row is None else row.cost_reserved,
                requests=0 if row is None else int(row.requests_reserved),
            )
            limits = TokenLimits(budget.max_tokens, budget.max_cost_usd, budget.max_requests)
            report.append(
                TokenBudgetStatus(
                    budget=budget,
                    window_start=start,
                    used=used,
                    reserved=reserved,
                    limits=limits,
                    remaining=TokenLimits(
                        tokens=_left(limits.tokens, used.tokens + reserved.tokens),
                        cost_usd=_left(limits.cost_usd, used.cost_usd + reserved.cost_usd),
                        requests=_left(limits.requests, used.requests + reserved.requests),
                    ),
                    soft_limit_reached=soft_limits_reached(
                        dict(limits.items()),
                        {
                            "tokens": used.tokens + reserved.tokens,
                            "cost_usd": used.cost_usd + reserved.cost_usd,
                            "requests": used.requests + reserved.requests,
                        },
                        budget.soft_limit_ratio,
                    ),
                )
            )
    return report
