r"""One exception hierarchy: every error says what happened and what to do.

Every error a caller of agent-control-plane can get is one of these, importable from
``agent_control_plane`` itself (``InvalidInputError`` and ``ConfigurationError`` are also
``ValueError``\s, ``NotFoundError`` a ``LookupError``)::

    ControlPlaneError
        ConfigurationError
            UnsupportedDatabaseError
        SchemaNotCurrentError
        MigrationError
        InvalidInputError
            UnknownModelError
        PolicyError
        NotFoundError
            SessionNotFoundError
            PolicyNotFoundError
            ApiKeyNotFoundError
            AgentNotFoundError
            TicketNotFoundError
            TokenBudgetNotFoundError
            ReservationNotFoundError
        InvalidTransitionError
        SessionTerminatedError
        KilledScopeError
        IdempotencyConflictError
        CheckpointSinkError
        MaintenanceRoleRequiredError
        GovernanceUnavailableError
            GovernanceBusyError
            OutcomeUnknownError
        ControlPlaneClosedError
        TokenBudgetExhausted
        ModelNotAllowedError
        TokenBudgetExistsError
        ActionNotAllowed
            ActionDenied
            ApprovalRequired
            ActionSteered
        McpServerError
        ActionInProgressError
        UngovernedCallError
        AuthenticationError
        PermissionDeniedError
        ActionFailedBeforeError
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_control_plane.models import Decision


class ControlPlaneError(Exception):
    """Base class for every error raised by agent-control-plane."""


class ConfigurationError(ControlPlaneError, ValueError):
    """A setting is invalid; nothing was created or written."""


class UnsupportedDatabaseError(ConfigurationError):
    """The URL names a database this library does not support."""


class SchemaNotCurrentError(ControlPlaneError):
    """The ACP tables are missing or older than this package expects.

    ``command`` holds the exact shell command that brings them up to date.
    """

    def __init__(
        self, message: str, *, current: tuple[str, ...], expected: tuple[str, ...], command: str
    ) -> None:
        super().__init__(message)
        self.current = current
        self.expected = expected
        self.command = command


class MigrationError(ControlPlaneError):
    """The ACP schema could not be brought to the requested revision."""


class InvalidInputError(ControlPlaneError, ValueError):
    """An argument is invalid; nothing was written. ``field`` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyError(ControlPlaneError, ValueError):
    """A policy document is invalid. ``problems`` lists (location, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class NotFoundError(ControlPlaneError, LookupError):
    """A session, policy or other record does not exist."""


class SessionNotFoundError(NotFoundError):
    """No session has this id."""


class PolicyNotFoundError(NotFoundError):
    """No stored policy has this id."""


class InvalidTransitionError(ControlPlaneError):
    """The session's status does not allow this change (a terminal session never reopens)."""


class SessionTerminatedError(ControlPlaneError):
    """The session was completed or killed; nothing more may be recorded by the agent."""


class KilledScopeError(ControlPlaneError):
    """A standing kill covers this agent or tenant: no session opens until it is lifted."""


class IdempotencyConflictError(ControlPlaneError):
    """The idempotency key was used before with a different request."""


class CheckpointSinkError(ControlPlaneError):
    """A signed audit checkpoint could not be stored where it was sent (file, directory
    or webhook); nothing in the database changed. Store it again, or fix the sink."""


class MaintenanceRoleRequiredError(ControlPlaneError):
    """The database user may not delete events: pruning runs as the maintenance role
    (``acp db upgrade --grant-maintenance-to ROLE``), never as the application's role."""


class GovernanceUnavailableError(ControlPlaneError):
    """The database could not be reached or failed; the action is refused (fail closed).

    Nothing was decided or written, except for the subclass OutcomeUnknownError. The
    database error is chained as ``__cause__``. Retry later; a keyed call may be retried
    with the same key at any time.
    """


class GovernanceBusyError(GovernanceUnavailableError):
    """ACP waited too long: for a free pooled connection, for a lock (SQLite's write lock
    past its busy timeout, a row lock past the lock timeout), or a deadlock repeated past
    ACP's retries. Nothing was decided or written. Retry, or give the pool more
    connections (``ControlPlane.open(pool_size=…)``) if this happens under normal load."""


class OutcomeUnknownError(GovernanceUnavailableError):
    """The connection failed while the call was committing, and ACP could not find out
    whether it committed. ``key`` is the idempotency key to retry with: the same call with
    ``idempotency_key=key`` returns the first result if it committed and is decided anew
    if it did not; it is never charged twice. ``key`` is None for a call that takes no key:
    then the message says how to check before repeating it."""

    def __init__(self, message: str, *, key: str | None) -> None:
        super().__init__(message)
        self.key = key


class ControlPlaneClosedError(ControlPlaneError):
    """The control plane was closed (``close()`` or the end of its ``with`` block); nothing
    was done. Open a new one."""


class TokenBudgetExhausted(ControlPlaneError):
    """A token budget cannot take this reservation or usage. Names the budget and window."""

    def __init__(
        self, message: str, *, budget_id: str, window_start: str, limit: str, usage: str
    ) -> None:
        super().__init__(message)
        self.budget_id = budget_id
        self.window_start = window_start
        self.limit = limit
        self.usage = usage


class ModelNotAllowedError(ControlPlaneError):
    """A budget's allowed/denied model lists refuse this model; nothing was held."""


class TokenBudgetExistsError(ControlPlaneError):
    """A budget for this scope and period exists already; update it instead."""


class ActionNotAllowed(ControlPlaneError):
    """``govern`` did not allow a governed call; ``decision`` holds the full answer.

    Raised by ``@governed`` before the function runs. Catch this to handle every
    refusal alike, or one of its three subclasses to tell them apart. Its message is
    written for the agent (it may be shown to a model); ``operator_message`` is for the
    operator's log.
    """

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision

    @property
    def operator_message(self) -> str:
        """What the operator's log says about this refusal (what to do about it)."""
        return str(self)


class ActionDenied(ActionNotAllowed):
    """The policy, a budget or the kill switch refused the action. ``reason`` says which."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"{decision.action} was denied ({decision.reason})", decision)
        self.reason = decision.reason


class ApprovalRequired(ActionNotAllowed):
    """A person must approve the action first. ``ticket_id`` names the approval ticket.

    Once it is approved, the identical call goes through (exactly once for a
    single-use approval). The message names the ticket and says a person must approve
    it; only ``operator_message`` names the command that approves it, because an agent
    that reads it should wait for a person, not run it.
    """

    def __init__(self, decision: Decision) -> None:
        ticket = decision.ticket_id
        how = (
            f"ticket {ticket} waits for a person to approve it; once a person has, "
            "the identical call goes through."
            if ticket is not None
            else "no ticket was opened (the policy runs in dry_run mode)."
        )
        super().__init__(
            f"{decision.action} needs a person's approval ({decision.reason}): {how}", decision
        )
        self.ticket_id = ticket

    @property
    def operator_message(self) -> str:
        decision = self.decision
        if self.ticket_id is None:
            return str(self)
        return (
            f"{decision.action} in session {decision.session_id} waits for approval "
            f"({decision.reason}): acp approvals approve {self.ticket_id} --by NAME"
        )


class ActionSteered(ActionNotAllowed):
    """The policy asks the agent to do something else first. ``guidance`` says what."""

    def __init__(self, decision: Decision) -> None:
        guidance = decision.guidance or ""
        super().__init__(f"{decision.action} was steered: {guidance}", decision)
        self.guidance = guidance


class McpServerError(ControlPlaneError):
    """The MCP server ``acp mcp-proxy`` runs did not start, or stopped. The message is one
    line: the command, its exit code (``exit_code``, None if it never ran or still runs)
    and the end of its stderr (``stderr_tail``)."""

    def __init__(
        self, message: str, *, command: list[str], exit_code: int | None, stderr_tail: list[str]
    ) -> None:
        super().__init__(message)
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class ActionInProgressError(ControlPlaneError):
    """Another call holds the claim on this action and no outcome is recorded for it yet.

    Raised by ``wait_for_outcome`` when its wait ends. The claimant may still be running
    the action, or it stopped before recording an outcome (then the outcome is unknown
    until someone records it). The action is never run a second time under the same
    decision: find out whether it happened and record that with ``record_outcome``, or
    govern it anew under another idempotency key. ``decision`` is the claimed decision.
    """

    def __init__(self, decision: Decision, waited: float) -> None:
        super().__init__(
            f"{decision.action} (decision {decision.event_seq} of session "
            f"{decision.session_id}) was claimed by another call at "
            f"{decision.decided_at.isoformat()} and has no recorded outcome after waiting "
            f"{waited:g}s: it is still running, or its claimant stopped before recording an "
            "outcome (then the outcome is unknown: check whether the action happened and "
            "record it with record_outcome). It is not run twice under one claim; govern "
            "with a new idempotency key to try again."
        )
        self.decision = decision


class UngovernedCallError(ControlPlaneError):
    """An integration was asked to make a call it cannot govern (e.g. a LiteLLM image or
    audio call under ACP's token budgets); it was refused before anything was sent."""


class AuthenticationError(ControlPlaneError):
    """An API key is missing, malformed, unknown, revoked or expired. ``reason`` says which
    (``missing``, ``malformed``, ``unknown``, ``revoked``, ``expired``, and for a dashboard
    sign-in ``signed_out``); the key itself is never repeated."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDeniedError(ControlPlaneError):
    """The API key's role, tenant or agents do not allow this; nothing was done."""


class ApiKeyNotFoundError(NotFoundError):
    """No API key has this key id."""


class AgentNotFoundError(NotFoundError):
    """No agent is registered with this id."""


class TicketNotFoundError(NotFoundError):
    """No approval ticket has this id."""


class TokenBudgetNotFoundError(NotFoundError):
    """No token budget has this id."""


class ReservationNotFoundError(NotFoundError):
    """No token reservation has this id."""


class UnknownModelError(InvalidInputError):
    """No price is known for the model; nothing was held or written."""


class ActionFailedBeforeError(ControlPlaneError):
    """The action failed in an earlier execution of this step (a LangGraph node, a LangChain
    tool call) and ACP recorded that; it is not run again under the same decision. Govern it
    anew (another ``key``) to retry."""
