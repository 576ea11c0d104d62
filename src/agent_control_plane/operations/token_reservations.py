"""Token reservations: hold the worst case against every matching budget
(reserve_tokens), then settle, release, or let it expire."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.boundary import NOT_COMMITTED, InDoubt
from agent_control_plane.errors import (
    IdempotencyConflictError,
    InvalidInputError,
    ModelNotAllowedError,
)
from agent_control_plane.errors import (
    ReservationNotFoundError as ReservationNotFoundError,
)
from agent_control_plane.errors import (
    TokenBudgetNotFoundError as TokenBudgetNotFoundError,
)
from agent_control_plane.models import (
    Reservation,
    TokenBudget,
    UsageRecord,
)
from agent_control_plane.operations.batches import drain
from agent_control_plane.operations.once import run_once, scope
from agent_control_plane.operations.token_budgets import (
    applicable,
    check_model,
    exhausted,
    identity_argument,
    soft_warnings,
    usage_argument,
    window_totals,
)
from agent_control_plane.operations.token_usage import ledger
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
from agent_control_plane.statuses import ReservationStatus
from agent_control_plane.store import tokens as token_store
from agent_control_plane.store.doubt import committed_reservation
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.settle_pg import settle_in_one_statement
from agent_control_plane.store.tokens import Finished

DEFAULT_TTL = timedelta(minutes=10)


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
    if remembered is not None and budget_rules.model_refusal(remembered[1], model) is None:
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
    budgets = applicable(connection, runtime, identity, session_id)
    if current is not None:
        runtime.memory.remember_budgets(key, current, budgets)
    check_model(budgets, model)
    return budgets, None


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
    if budget_rules.over(budget, totals, tokens, cost, 1):
        raise exhausted(connection, runtime, budget, since, tokens, cost, totals)
    token_store.ensure_window(connection, runtime, budget.id, current, now)
    token_store.add_hold(connection, runtime, budget.id, current, tokens, cost, now)
    return [str(budget.id), current.isoformat()]


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
    identity = identity_argument(identity)
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
                    raise exhausted(connection, runtime, budget, start, worst.total, cost)
                holds.append([str(budget.id), start.isoformat()])
            if budget.soft_limit_ratio is not None:  # read only where a soft limit is set
                totals = window_totals(connection, runtime, budget, now)
                warnings.extend(soft_warnings(budget, totals))
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
                "status": ReservationStatus.HELD,
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
    usage = usage_argument(usage)
    if runtime.capabilities.writes_in_one_statement and isinstance(reservation, Reservation):
        cost = runtime.prices.price(reservation.model).cost(usage)
        record = settle_in_one_statement(
            connection, runtime, rid, reservation.model, usage, cost, runtime.clock()
        )
        if record is not None:
            return record
    with connection.begin():
        now = runtime.clock()
        settled = token_store.finish_reservation(
            connection, runtime, rid, ReservationStatus.SETTLED, now
        )
        if settled is None:
            return _already_settled(connection, runtime, rid, usage)
        cost = runtime.prices.price(settled.model).cost(usage)
        _unhold(connection, runtime, settled, usage, cost, now)
        return ledger(connection, runtime, settled.id, settled.model, usage, cost, now, settled.ids)


def _already_settled(
    connection: Connection, runtime: Runtime, rid: uuid.UUID, usage: TokenUsage
) -> UsageRecord:
    found = token_store.get_reservation(connection, runtime, rid)
    if found is None:
        raise ReservationNotFoundError(f"no token reservation {rid}")
    row = token_store.ledger_for(connection, runtime, rid)
    if found.status != ReservationStatus.SETTLED or row is None:
        raise InvalidInputError("reservation", f"reservation {rid} is {found.status}, not held")
    if row.total_tokens != usage.total or row.input_tokens != usage.input_tokens:
        raise IdempotencyConflictError(f"reservation {rid} was settled with other usage")
    return UsageRecord(row.id, row.model, row.total_tokens, row.cost_usd, row.reservation_id)


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
        finished = token_store.finish_reservation(
            connection, runtime, rid, ReservationStatus.RELEASED, now
        )
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
            if (
                done := token_store.finish_reservation(
                    connection, runtime, rid, ReservationStatus.EXPIRED, now
                )
            )
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
