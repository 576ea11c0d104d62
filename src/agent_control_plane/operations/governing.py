"""govern() and record_outcome(): the call an agent makes before it acts, and after."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_control_plane.boundary import NOT_COMMITTED, InDoubt
from agent_control_plane.errors import InvalidInputError
from agent_control_plane.models import Decision, Event
from agent_control_plane.operations import approvals, checks, remembered
from agent_control_plane.operations.once import run_once, scope
from agent_control_plane.rules import budget, lifecycle, recovery, resources, validation
from agent_control_plane.rules.audit import plus
from agent_control_plane.rules.canonical import digest
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import CompiledPolicy, Outcome, Route
from agent_control_plane.runtime import Runtime, SessionFacts, reading
from agent_control_plane.statuses import OutcomeStatus, values
from agent_control_plane.store import events as event_store
from agent_control_plane.store import idempotency
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store.decide_pg import can_decide_in_one_statement, decide_in_one_statement
from agent_control_plane.store.doubt import committed_event
from agent_control_plane.store.events import NewEvent, Slot
from agent_control_plane.store.idempotency import Claim
from agent_control_plane.store.sessions import Allocated, Placed

OUTCOME_STATUSES = values(OutcomeStatus)
INVALID_RESOURCE = Route(Outcome.DENIED, resources.INVALID)


def govern(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str,
    action: str,
    *,
    resource: str | None = None,
    args: dict[str, Any] | None = None,
    cost: Decimal | int | str = 0,
    weight: float | None = None,
    score: float | None = None,
    idempotency_key: str | None = None,
    context: dict[str, Any] | None = None,
    resource_root: str | None = None,
    claim: bool = False,
) -> Decision:
    """Decide whether the agent may perform ``action`` now, charge it, and record it.

    One transaction: kill and expiry check, policy routing, conditional budget
    charge, event append and idempotency record. Returns a Decision whose
    ``outcome`` is allowed, needs_approval, steer or denied, with a machine-readable
    ``reason``. Raises InvalidInputError (nothing written) for bad arguments and
    SessionNotFoundError for an unknown session. ``context`` (e.g. correlation ids)
    is stored with the decision event only: it is not part of what is decided or
    approved, nor of the request an idempotency key is compared with.

    ``resource`` is decided, bound to approvals and stored in its canonical form
    (``./a/../b`` is ``b``); one that has none, such as a ``..`` climbing out of its
    root, is denied with reason ``assets.invalid_resource``. ``resource_root`` (an
    absolute path, such as an MCP server's folder) makes absolute paths under it
    relative, and denies those outside it.

    ``claim=True`` (needs an ``idempotency_key``) makes an allowed action run at most
    once among every call with that key, however many run at the same moment: the call
    whose transaction records the decision (and uses the approval) gets
    ``decision.claimed`` True and alone runs the action, then records its outcome; every
    other gets the same decision with ``claimed`` False and waits for that outcome with
    ``wait_for_outcome``. Like ``context``, ``claim`` is not part of the request a key is
    compared with: a decision recorded without a claim is never claimed by a retry.
    """
    sid = validation.session_id(session_id)
    resource, resource_valid = _canonical_resource(resource, resource_root)
    proposal = Proposal(
        action=validation.required_text(action, "action"),
        resource=resource,
        args=validation.document(args, "args") or {},
        cost=validation.money(cost, "cost"),
        weight=validation.unit_interval(weight, "weight"),
        score=validation.unit_interval(score, "score"),
    )
    key = validation.idempotency_key(idempotency_key)
    if claim and key is None:
        raise InvalidInputError("claim", "needs an idempotency_key: the claim is keyed by it")
    correlation = validation.document(context, "context")
    facts = remembered.session_facts(connection, runtime, sid)
    policy = remembered.policy(connection, runtime, facts.policy_id)
    route = runtime.route(policy, proposal) if resource_valid else INVALID_RESOURCE
    request = [
        str(sid),
        proposal.action,
        proposal.resource,
        proposal.args,
        str(proposal.cost),
        proposal.weight,
        proposal.score,
    ]

    recovered = recovery.parse_event_key(key)
    if recovered is not None:
        found = _recover(connection, runtime, sid, *recovered)
        if found is not None:
            return found
    if (
        runtime.capabilities.one_statement_decisions
        and route.outcome is Outcome.ALLOWED
        and not policy.dry_run
        and not policy.document.needs_history
    ):
        decided = _decide_in_one(
            connection,
            runtime,
            sid,
            facts,
            policy,
            route,
            proposal,
            key,
            request,
            correlation,
            claim,
        )
        if decided is not None:
            return decided
    written: dict[str, Any] = {}

    def work(record: Claim | None) -> tuple[Decision, dict[str, Any]]:
        decision, data, event = _decide(
            connection, runtime, sid, facts, policy, route, proposal, record, correlation, claim
        )
        written.update(event)
        return decision, data

    def in_doubt(decision: Decision) -> InDoubt:
        return _event_doubt(runtime, written, decision)

    return run_once(
        connection,
        runtime,
        work,
        _replayed,
        scope=scope("govern", facts.tenant),
        key=key,
        request=request,
        look_first=False,
        in_doubt=None if key is not None else in_doubt,
    )


def _event_doubt(runtime: Runtime, written: dict[str, Any], decision: Decision) -> InDoubt:
    """A decision without a key of its own whose commit failed: its event is what shows
    whether it committed."""

    def witness(fresh: Connection) -> Decision:
        row = committed_event(fresh, runtime, written)
        return decision if row is not None and row["hash"] == written["hash"] else NOT_COMMITTED

    return InDoubt(key=recovery.event_key(decision.event_seq, written["hash"]), witness=witness)


def _decide_in_one(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    facts: SessionFacts,
    policy: CompiledPolicy,
    route: Route,
    proposal: Proposal,
    key: str | None,
    request: list[Any],
    correlation: dict[str, Any] | None,
    claim_action: bool,
) -> Decision | None:
    """An allowed decision in one statement (PostgreSQL), where this process wrote the
    session's last event and knows its limits; None where the general path must decide
    (nothing remembered, or the statement found the session changed or the charge
    refused: nothing was written)."""
    head = runtime.memory.head(session_id)
    limits = runtime.memory.limits(session_id)
    if head is None or limits is None or not can_decide_in_one_statement(connection):
        return None
    seq, prev_hash, counters = head.next_seq, head.hash, head.counters
    after = plus(counters, (proposal.cost, 1))
    if after[0] > limits[0] or after[1] > limits[1]:
        return None  # refused: the general path says why
    now = runtime.clock()
    payload = _payload(proposal, policy, facts, True, None, key, None, correlation, claim_action)
    event = NewEvent(
        "decision", proposal.action, route.outcome.value, route.reason, proposal.cost, payload
    )
    values = event_store.event_values(
        Slot(session_id, seq, prev_hash, after), event, now, runtime.keys.current
    )
    decision = Decision(
        outcome=route.outcome,
        reason=route.reason,
        session_id=session_id,
        action=proposal.action,
        event_seq=seq,
        cost=proposal.cost,
        charged=True,
        dry_run=False,
        guidance=None,
        remaining_cost=max(limits[0] - values["cost_used"], Decimal(0)),
        remaining_actions=max(limits[1] - values["actions_used"], 0),
        policy_id=facts.policy_id,
        decided_at=now,
        idempotency_key=key,
        ticket_id=None,
        claimed=claim_action,
    )
    claim = None if key is None else Claim(scope("govern", facts.tenant), key, digest(request))
    try:
        written = decide_in_one_statement(
            connection,
            runtime,
            session_id,
            proposal.cost,
            now,
            Placed(seq, prev_hash, values["hash"], counters),
            limits,
            values,
            claim,
            decision.to_json_data(),
        )
    except IntegrityError:
        return None  # the key is taken: the general path replays its first result
    except DBAPIError as error:
        # Sent in autocommit, the statement may have committed before the failure; either
        # way the head this process remembers may be stale now: read it again next time.
        runtime.memory.forget_head(session_id)
        if key is not None:
            raise InDoubt(key=key, rerun={}) from error
        raise _event_doubt(runtime, values, decision) from error
    if not written:
        return None
    runtime.memory.remember_head(session_id, seq + 1, values["hash"], after)
    return decision


def _recover(
    connection: Connection, runtime: Runtime, session_id: uuid.UUID, seq: int, event_hash: str
) -> Decision | None:
    """The decision a key from OutcomeUnknownError names, if its event committed (read
    under the session's lock, so a decision still being written is waited for); None if
    it did not, and the call is then decided anew under that key. The remaining budget
    is the session's as of now."""
    with connection.begin():
        session = session_store.lock(connection, runtime, session_id)
        event = event_store.by_seq(connection, runtime, session_id, seq)
    if (
        session is None
        or event is None
        or event.hash != event_hash
        or event.kind != "decision"
        or event.outcome is None
    ):
        return None
    payload = event.payload or {}
    return Decision(
        outcome=Outcome(event.outcome),
        reason=event.reason or "",
        session_id=session_id,
        action=event.action or "",
        event_seq=seq,
        cost=event.cost if event.cost is not None else Decimal(0),
        charged=bool(payload.get("charged")),
        dry_run=bool(payload.get("dry_run")),
        guidance=payload.get("guidance"),
        remaining_cost=max(session.max_cost - session.cost_used, Decimal(0)),
        remaining_actions=max(session.max_actions - session.actions_used, 0),
        policy_id=uuid.UUID(payload["policy_id"]),
        decided_at=event.created_at,
        idempotency_key=payload.get("idempotency_key"),
        ticket_id=uuid.UUID(payload["ticket_id"]) if payload.get("ticket_id") else None,
    )


def _canonical_resource(resource: Any, root: Any) -> tuple[str | None, bool]:
    """The resource in canonical form and True; as given and False if it has none."""
    given = validation.resource(resource)
    root_path = validation.resource_root(root)
    if given is None:
        return None, True
    try:
        canonical = resources.canonical(given, root_path)
    except resources.InvalidResource:
        return given, False
    return validation.resource(canonical), True


def _decide(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    facts: SessionFacts,
    policy: CompiledPolicy,
    route: Route,
    proposal: Proposal,
    claim: Claim | None,
    correlation: dict[str, Any] | None,
    claim_action: bool,
) -> tuple[Decision, dict[str, Any], dict[str, Any]]:
    """The decision, its idempotency data, and its event's values."""
    now = runtime.clock()
    document = policy.document
    outcome, reason, charged, ticket_id = route.outcome, route.reason, False, None
    key = None if claim is None else claim.key
    row = None
    written = None  # the decision's event, if the charge placed it
    if outcome is Outcome.ALLOWED and not policy.dry_run and not document.needs_history:
        # The common case: one statement checks status, expiry and budgets, and charges.
        payload = _payload(
            proposal, policy, facts, True, None, key, None, correlation, claim_action
        )
        event = NewEvent("decision", proposal.action, outcome.value, reason, proposal.cost, payload)
        row, written = _charge_placing(connection, runtime, session_id, proposal.cost, event, now)
        if row is None:
            row = session_store.charge(connection, runtime, session_id, proposal.cost, now)
        charged = row is not None
    if row is None:
        # Lock the session row (allocating the seq) and decide under the lock.
        row = session_store.allocate_seq(connection, runtime, session_id)
        refusal = lifecycle.refusal_for_status(row.status, row.expires_at, now)
        if refusal is None and (
            outcome is Outcome.STEER or (outcome is not Outcome.DENIED and document.needs_history)
        ):
            refusal = checks.history_refusal(
                connection, runtime, document, facts, row, proposal, outcome, now
            )
        if refusal is None and outcome in (Outcome.ALLOWED, Outcome.NEEDS_APPROVAL):
            refusal = budget.refusal(
                actions_used=row.actions_used,
                max_actions=row.max_actions,
                cost_used=row.cost_used,
                max_cost=row.max_cost,
                cost=proposal.cost,
            )
        if refusal is not None:
            outcome, reason = Outcome.DENIED, refusal
        elif outcome is Outcome.ALLOWED and not policy.dry_run:
            charged_row = session_store.charge(
                connection, runtime, session_id, proposal.cost, now, advance_seq=False
            )
            if charged_row is None:  # only if the row changed under our lock: never
                outcome, reason = Outcome.DENIED, "session.unavailable"
            else:
                row, charged = charged_row, True
        elif outcome is Outcome.NEEDS_APPROVAL and not policy.dry_run:
            approved = approvals.use_approval(connection, runtime, row, proposal, now)
            if approved is not None:
                row, ticket_id, reason = approved
                outcome, charged = Outcome.ALLOWED, True
            else:
                bound = (
                    None if claim is None else approvals.bound_ticket(connection, runtime, claim)
                )
                if bound is not None and bound.status in approvals.FINAL_REFUSALS:
                    # The person's answer to this keyed request: a retry must not ask again.
                    outcome, reason = Outcome.DENIED, f"approval.{bound.status}:{bound.id}"
                else:
                    ticket_id = approvals.request_approval(
                        connection, runtime, row, facts.policy_id, policy, proposal, reason, now
                    )
                    if claim is not None and bound is None:
                        approvals.bind_ticket(connection, runtime, claim, ticket_id, now)
    runtime.memory.remember_limits(session_id, row.max_cost, row.max_actions)
    guidance = route.guidance if outcome is Outcome.STEER else None
    claimed = claim_action and outcome is Outcome.ALLOWED
    decision = Decision(
        outcome=outcome,
        reason=reason,
        session_id=session_id,
        action=proposal.action,
        event_seq=row.seq,
        cost=proposal.cost,
        charged=charged,
        dry_run=policy.dry_run,
        guidance=guidance,
        remaining_cost=max(row.max_cost - row.cost_used, Decimal(0)),
        remaining_actions=max(row.max_actions - row.actions_used, 0),
        policy_id=facts.policy_id,
        decided_at=now,
        idempotency_key=key,
        ticket_id=ticket_id,
        claimed=claimed,
    )
    data = decision.to_json_data()
    if claim is not None and outcome is Outcome.NEEDS_APPROVAL:
        # Not final: once approved, a retry with this key must consume the approval. A
        # final result recorded earlier under the key still wins.
        if idempotency.find(connection, runtime, claim.scope, claim.key) is not None:
            raise idempotency.AlreadyRecorded
        claim.final = False
    record = claim if claim is not None and claim.final else None
    if written is not None:
        event_store.write(connection, runtime, written, record, data, head_moved=True)
        return decision, data, written
    payload = _payload(
        proposal, policy, facts, charged, guidance, key, ticket_id, correlation, claimed
    )
    values = event_store.append(
        connection,
        runtime,
        Slot.of(row),
        NewEvent("decision", proposal.action, outcome.value, reason, proposal.cost, payload),
        now,
        record,
        data,
    )
    return decision, data, values


def _charge_placing(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID,
    cost: Decimal,
    event: NewEvent,
    now: datetime,
) -> tuple[Allocated | None, dict[str, Any] | None]:
    """Where this process wrote the session's last event: build ``event`` in the next slot
    first, and charge with the statement that also moves the chain head to it. Its row and
    the event's values; (None, None) if there is no remembered head, or the charge changed
    nothing (another writer came between, or it is refused: the caller finds out which)."""
    head = runtime.memory.head(session_id)
    if head is None:
        return None, None
    seq, prev_hash, counters = head.next_seq, head.hash, head.counters
    slot = Slot(session_id, seq, prev_hash, plus(counters, (cost, 1)))
    values = event_store.event_values(slot, event, now, runtime.keys.current)
    placed = Placed(seq, prev_hash, values["hash"], counters)
    row = session_store.charge(connection, runtime, session_id, cost, now, head=placed)
    return (row, values) if row is not None else (None, None)


def _payload(
    proposal: Proposal,
    policy: CompiledPolicy,
    facts: SessionFacts,
    charged: bool,
    guidance: str | None,
    key: str | None,
    ticket_id: uuid.UUID | None,
    correlation: dict[str, Any] | None,
    claimed: bool,
) -> dict[str, Any]:
    """What a decision event records besides its action, outcome, reason and cost."""
    payload = {
        "resource": proposal.resource,
        "args": proposal.args,
        "weight": proposal.weight,
        "score": proposal.score,
        "charged": charged,
        "dry_run": policy.dry_run,
        "guidance": guidance,
        "policy_id": str(facts.policy_id),
        "idempotency_key": key,
        "ticket_id": None if ticket_id is None else str(ticket_id),
    }
    if correlation is not None:
        payload["context"] = correlation
    if claimed:
        payload["claimed"] = True
    return payload


def _replayed(data: dict[str, Any]) -> Decision:
    """The decision an earlier call with this key recorded; its claim stays with that call."""
    return replace(Decision.from_json_data(data), claimed=False)


def record_outcome(
    connection: Connection,
    runtime: Runtime,
    decision: Decision,
    status: str,
    actual_cost: Decimal | int | str | None = None,
    result: dict[str, Any] | None = None,
) -> Event:
    """Record what really happened after ``decision`` and settle the cost difference.

    The budget moves by (actual - estimated) in the same transaction as the outcome
    event, so the trail holds the attempt and the outcome. Recording the same
    decision's outcome twice returns the first record and changes nothing.
    """
    decision = _decision(decision)
    if status not in OUTCOME_STATUSES:
        raise InvalidInputError("status", f"must be one of {', '.join(OUTCOME_STATUSES)}")
    actual = decision.cost if actual_cost is None else validation.money(actual_cost, "actual_cost")
    payload = validation.document(result, "result")
    facts = remembered.session_facts(connection, runtime, decision.session_id)
    request = [status, str(actual), payload]

    def work(claim: Claim | None) -> tuple[Event, dict[str, Any]]:
        recorded = event_store.by_seq(connection, runtime, decision.session_id, decision.event_seq)
        if (
            recorded is None
            or recorded.kind != "decision"
            or recorded.outcome != decision.outcome.value
            or recorded.cost != decision.cost
            or bool(recorded.payload.get("charged")) != decision.charged
        ):
            raise InvalidInputError("decision", "does not match the decision ACP recorded")
        delta = actual - decision.cost if decision.charged else Decimal(0)
        row = session_store.allocate_seq(connection, runtime, decision.session_id, delta)
        now = runtime.clock()
        event = NewEvent(
            "outcome",
            decision.action,
            status,
            f"outcome.{status}",
            actual,
            {
                "decision_seq": decision.event_seq,
                "estimated_cost": str(decision.cost),
                "settled": str(delta),
                "result": payload,
            },
        )
        # The record goes in with the event (one statement on PostgreSQL).
        data = {"seq": row.seq}
        values = event_store.append(
            connection, runtime, Slot.of(row), event, now, claim, data, with_id=True
        )
        return event_store.to_event(values), data

    def replay(data: dict[str, Any]) -> Event:
        with connection.begin():
            stored = event_store.by_seq(connection, runtime, decision.session_id, int(data["seq"]))
        assert stored is not None
        return stored

    return run_once(
        connection,
        runtime,
        work,
        replay,
        scope=scope("outcome", facts.tenant),
        key=_outcome_key(decision),
        request=request,
    )


def outcome_of(connection: Connection, runtime: Runtime, decision: Decision) -> Event | None:
    """The outcome event recorded for ``decision``, or None while there is none."""
    decision = _decision(decision)
    facts = remembered.session_facts(connection, runtime, decision.session_id)
    with reading(connection):
        stored = idempotency.find(
            connection, runtime, scope("outcome", facts.tenant), _outcome_key(decision)
        )
        if stored is None:
            return None
        return event_store.by_seq(
            connection, runtime, decision.session_id, int(stored.result["seq"])
        )


def _decision(value: Any) -> Decision:
    if not isinstance(value, Decision):
        raise InvalidInputError(
            "decision", f"must be the Decision that govern returned, not a {type(value).__name__}"
        )
    return value


def _outcome_key(decision: Decision) -> str:
    return f"{decision.session_id}:{decision.event_seq}"
