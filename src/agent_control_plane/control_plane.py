"""ControlPlane and AsyncControlPlane: the public facade, thin over rules and store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from sqlalchemy import Dialect, Engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_control_plane import loading
from agent_control_plane.boundary import Boundary
from agent_control_plane.capabilities import capabilities_of
from agent_control_plane.config import MigrateMode
from agent_control_plane.connections import Connections
from agent_control_plane.engine import (
    create_async_engine_for,
    create_sync_engine,
    governed_async_engine,
    governed_engine,
    pool_of_its_own,
    threaded_sqlite_engine,
)
from agent_control_plane.errors import ActionInProgressError, ConfigurationError
from agent_control_plane.evaluators import Evaluator
from agent_control_plane.facade import async_method, refuse_if_closed, sync_method
from agent_control_plane.guards import AsyncTokenGuard, GuardRequest, TokenGuard
from agent_control_plane.integrations import decorator
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.models import Decision, Event, Principal, Ticket
from agent_control_plane.opening import Opening, prepare_schema, resolve
from agent_control_plane.operations import (
    agents,
    approvals,
    audit,
    checkpoints,
    governing,
    keys,
    kills,
    maintenance,
    policies,
    sessions,
    sign_ins,
    tokens,
    verification,
)
from agent_control_plane.rules import waiting
from agent_control_plane.rules.audit_keys import KeyLike
from agent_control_plane.rules.model_tiers import ModelPolicy
from agent_control_plane.rules.tokens import Identity, PriceTable
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.tables import AcpTables, build_tables

if TYPE_CHECKING:
    from agent_control_plane.telemetry import Instrumentation

F = TypeVar("F", bound=Callable[..., Any])


class _Closes(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=_Closes)


class _ControlPlaneBase:
    """Everything that does no I/O, shared by the sync and async classes."""

    def __init__(self, dialect: Dialect, opening: Opening) -> None:
        self._layout = opening.layout
        self._tables = build_tables(opening.layout)
        self._runtime = Runtime.for_connection_dialect(
            self._tables,
            dialect,
            fail_open=opening.fail_open,
            idempotency_retention=opening.idempotency_retention,
            keys=opening.keys,
        )
        self._migrator = Migrator(opening.layout)
        self._owns_engine = opening.engine is None
        self._closed = False
        self._applied: tuple[str, ...] = ()
        self._instrumentation: Instrumentation | None = None

    @property
    def layout(self) -> Layout:
        """Where ACP's tables live in this database."""
        return self._layout

    def _knows_its_server(self, dialect: Dialect) -> None:
        """Ask the dialect again what the database can do, now that it has connected: some
        capabilities depend on the server's version (MariaDB has INSERT ... RETURNING from
        10.5), which SQLAlchemy learns at the first connection."""
        self._runtime = replace(self._runtime, capabilities=capabilities_of(dialect))

    @property
    def tables(self) -> AcpTables:
        """ACP's SQLAlchemy Core tables for this layout (read-only use)."""
        return self._tables

    @property
    def migrator(self) -> Migrator:
        return self._migrator

    @property
    def applied_migrations(self) -> tuple[str, ...]:
        """The migration steps this process ran while opening (usually none)."""
        return self._applied

    def set_prices(
        self,
        prices: PriceTable | dict[str, Any] | str | Path | None,
        *,
        fallback: str | None = None,
    ) -> None:
        """Use this price table (USD per million tokens per model; a mapping, a YAML/JSON
        file or a PriceTable) for token reservations and usage. ``fallback="litellm"`` (or a
        ``fallback: litellm`` entry) prices models missing from the table from LiteLLM's
        model cost map. An unknown model is an error unless the table has a ``default``."""
        refuse_if_closed(self)
        table = loading.price_table(prices, fallback=fallback)
        if table.fallback == "litellm":
            from agent_control_plane.integrations.litellm_prices import litellm_price

            table = replace(table, fallback_lookup=litellm_price)
        self._runtime = replace(self._runtime, prices=table)

    def set_model_policy(self, policy: ModelPolicy | dict[str, Any] | None) -> None:
        """Restrict which model tiers each action tier (and identity) may reserve tokens for;
        None lifts the restriction. Enforced by reserve_tokens before anything is held."""
        refuse_if_closed(self)
        self._runtime = replace(self._runtime, model_policy=ModelPolicy.of(policy))

    def remembered_principal(self, key: str | None) -> Principal | None:
        """The principal of an API key this control plane verified in the last second,
        checked without touching the database (the secret hashed and compared in constant
        time, the expiry against now); None when only ``authenticate_api_key`` can tell.
        AuthenticationError for a missing, malformed or expired key. For a server that
        checks keys on its event loop before handing work to a thread."""
        refuse_if_closed(self)
        return keys.remembered_principal(self._runtime, key)

    def register_evaluator(self, name: str, evaluator: Evaluator) -> None:
        """Make ``evaluator`` (``(params, proposal) -> bool``) available to policy conditions."""
        refuse_if_closed(self)
        self._runtime.evaluators.register(name, evaluator)

    def governed(
        self,
        action: str,
        *,
        cost: Any = 0,
        resource: Any = None,
        args: Any = None,
        weight: Any = None,
        score: Any = None,
        idempotency_key: Any = None,
        session: Any = None,
        summary: Callable[[Any], dict[str, Any]] = decorator.default_summary,
    ) -> Callable[[F], F]:
        """Decorate a function so each call is governed first and its outcome recorded.

        The function runs only if ``govern`` allows it; otherwise the call raises
        ``ActionDenied`` (``.reason``), ``ApprovalRequired`` (``.ticket_id``) or
        ``ActionSteered`` (``.guidance``), all ``ActionNotAllowed``. A return records
        a ``succeeded`` outcome with ``summary(result)``; an exception records
        ``failed`` and is re-raised; a call stopped from outside (cancelled, timed out,
        interrupted) records ``cancelled``. ``ControlPlane`` decorates plain functions and
        generators, ``AsyncControlPlane`` ``async def`` functions and async generators; a
        generator is governed when its first item is asked for and recorded when it
        finishes, fails or is closed early (``cancelled``), with the number of items given.

        Every setting is a value or a callable taking the call's own arguments, e.g.
        ``resource=lambda to, **_: f"mailto:{to}"``. ``args`` defaults to the call's
        arguments (so a single-use approval covers exactly the approved call).
        ``session`` defaults to the id set by ``with cp.session_scope(session_id):``.
        """
        refuse_if_closed(self)
        call = decorator.GovernedCall(
            action, cost, resource, args, weight, score, idempotency_key, session, summary
        )
        return decorator.governed(self, call)  # type: ignore[arg-type]

    def session_scope(self, session_id: uuid.UUID | str) -> AbstractContextManager[uuid.UUID]:
        """Within the block, ``@governed`` calls without ``session=`` use ``session_id``."""
        refuse_if_closed(self)
        return decorator.session_scope(session_id)

    def instrument(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Emit OpenTelemetry spans for govern, reserve_tokens, settle and release, and
        metrics: decisions by outcome, decision latency, cost charged, pending approvals and
        token budget gauges. Providers default to OpenTelemetry's global ones. Needs the
        ``otel`` extra (ConfigurationError otherwise); call an AsyncControlPlane's from
        inside its event loop. A control plane never instrumented pays nothing."""
        from agent_control_plane.telemetry import instrument

        refuse_if_closed(self)
        if self._instrumentation is not None:
            raise ConfigurationError("this control plane is instrumented already")
        self._instrumentation = instrument(self, tracer_provider, meter_provider)  # type: ignore[arg-type]

    def uninstrument(self) -> None:
        """Stop emitting spans and metrics (a no-op if not instrumented)."""
        if self._instrumentation is not None:
            self._instrumentation.remove()
            self._instrumentation = None


class ControlPlane(_ControlPlaneBase):
    """Governance for AI agents, stored in your own database (synchronous API)."""

    def __init__(self, engine: Engine, opening: Opening) -> None:
        super().__init__(engine.dialect, opening)
        self._engine = governed_engine(engine)
        self._source_engine = engine
        self._connections = Connections.for_engine(self._engine, owned=self._owns_engine)
        self._boundary = Boundary(engine.dialect)
        # Kills get a pool of their own: they never wait behind governed calls for one.
        urgent = pool_of_its_own(self._engine)
        self._urgent = None if urgent is None else Connections(urgent, keep=0)

    @classmethod
    def open(
        cls,
        url: str | URL | Engine | None = None,
        *,
        schema: str | None = None,
        table_prefix: str | None = None,
        migrate: MigrateMode | None = None,
        fail_open: Iterable[str] = (),
        idempotency_retention: timedelta | None = None,
        audit_key: KeyLike | None = None,
        audit_keys: Iterable[KeyLike] | str | None = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> ControlPlane:
        """Open ACP on ``url`` (or a host's ``Engine``) and prepare its schema.

        :param url: database URL or Engine; default ``ACP_DATABASE_URL``, else
            ``sqlite:///acp.db``.
        :param schema: PostgreSQL schema for ACP's tables (default ``acp``).
        :param table_prefix: prefix for ACP's table names (default ``acp_`` on
            SQLite and MySQL/MariaDB, none on PostgreSQL).
        :param migrate: ``"auto"`` upgrades under a database lock, ``"verify"``
            raises :class:`SchemaNotCurrentError` unless current, ``"off"`` skips.
        :param fail_open: categories whose failures do not deny; only ``"evaluator"``
            is allowed (logged at WARNING). Budgets and the kill check always fail closed.
        :param idempotency_retention: how long idempotency keys are kept before
            ``prune_idempotency_keys()`` removes them (default ACP_IDEMPOTENCY_RETENTION,
            else 7 days).
        :param audit_key: the secret (at least 32 bytes) every new event's link is keyed
            with and prune anchors are signed with (default ACP_AUDIT_KEY). Never stored:
            events hold only its id. Without one, the chain detects accidental damage only.
        :param audit_keys: older audit keys, which events linked before a rotation still
            need to verify (default ACP_AUDIT_KEYS, separated by commas).
        :param pool_size: connections the pool keeps open (default 5); each call that
            runs at the same time as others holds one while it runs.
        :param max_overflow: connections it may open beyond ``pool_size`` under load
            (default 10).
        :param pool_timeout: seconds a call waits for a free connection before it fails
            with GovernanceBusyError (default 30).
        :param lock_timeout: seconds a statement waits for a lock another transaction
            holds (SQLite's write lock included) before the call fails with
            GovernanceBusyError (default: SQLite 30, PostgreSQL unlimited, MariaDB 50).
            The four pool settings apply to an engine ACP creates, not to a host's.
        """
        opening = resolve(
            url,
            Engine,
            asyncio=False,
            schema=schema,
            table_prefix=table_prefix,
            migrate=migrate,
            fail_open=fail_open,
            idempotency_retention=idempotency_retention,
            audit_key=audit_key,
            audit_keys=audit_keys,
            pool=(pool_size, max_overflow, pool_timeout, lock_timeout),
        )
        engine = opening.engine or create_sync_engine(opening.require_url(), opening.pool)
        control_plane = cls(engine, opening)
        try:
            with (
                control_plane._boundary.translated(),
                control_plane._engine.connect() as connection,
            ):
                applied = prepare_schema(connection, control_plane._migrator, opening.migrate)
            control_plane._applied = tuple(applied)
            control_plane._knows_its_server(control_plane._engine.dialect)
        except BaseException:
            control_plane.close()
            raise
        return control_plane

    @property
    def engine(self) -> Engine:
        return self._engine

    def schema_revision(self) -> tuple[str, ...]:
        """The ACP revision(s) the database is at."""
        refuse_if_closed(self)
        with self._boundary.translated(), self._engine.connect() as connection:
            return self._migrator.current(connection)

    def close(self) -> None:
        """Release the connection pool (only if ACP created the engine). Every method
        called afterwards raises ControlPlaneClosedError."""
        self.uninstrument()
        self._connections.close()
        if not self._closed:
            if self._owns_engine:
                self._source_engine.dispose()
            if self._urgent is not None:
                self._urgent.engine.dispose()
        self._runtime.evaluators.close()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    open_session = sync_method(sessions.open_session)
    get_session = sync_method(sessions.get_session)
    list_sessions = sync_method(sessions.list_sessions)
    pause_session = sync_method(sessions.pause_session)
    resume_session = sync_method(sessions.resume_session)
    complete_session = sync_method(sessions.complete_session)
    heartbeat = sync_method(sessions.heartbeat)
    kill_session = sync_method(kills.kill_session)
    kill_agent = sync_method(kills.kill_agent)
    kill_tenant = sync_method(kills.kill_tenant)
    kill_all = sync_method(kills.kill_all)
    lift_kill = sync_method(kills.lift_kill)
    list_kills = sync_method(kills.list_kills)
    govern = sync_method(governing.govern)
    record_outcome = sync_method(governing.record_outcome)
    outcome_of = sync_method(governing.outcome_of)
    apply_policy = sync_method(policies.apply_policy)
    get_policy = sync_method(policies.get_policy)
    list_policies = sync_method(policies.list_policies)
    emit = sync_method(audit.emit)
    _record_event = sync_method(audit.record_event)
    events = sync_method(audit.events)
    event_feed = sync_method(audit.event_feed)
    event_feed_head = sync_method(audit.event_feed_head)
    verify_audit = sync_method(verification.verify_audit)
    audit_checkpoint = sync_method(checkpoints.audit_checkpoint)
    prune_idempotency_keys = sync_method(maintenance.prune_idempotency_keys)
    run_maintenance = sync_method(maintenance.run_maintenance)
    approve = sync_method(approvals.approve)
    deny = sync_method(approvals.deny)
    get_ticket = sync_method(approvals.get_ticket)
    list_tickets = sync_method(approvals.list_tickets)
    count_tickets = sync_method(approvals.count_tickets)
    expire_tickets = sync_method(approvals.expire_tickets)
    set_token_budget = sync_method(tokens.set_token_budget)
    update_token_budget = sync_method(tokens.update_token_budget)
    delete_token_budget = sync_method(tokens.delete_token_budget)
    list_token_budgets = sync_method(tokens.list_token_budgets)
    reserve_tokens = sync_method(tokens.reserve_tokens)
    settle = sync_method(tokens.settle)
    release = sync_method(tokens.release)
    get_reservation = sync_method(tokens.get_reservation)
    release_expired_holds = sync_method(tokens.release_expired_holds)
    record_usage = sync_method(tokens.record_usage)
    token_usage = sync_method(tokens.token_usage)
    token_budget_status = sync_method(tokens.token_budget_status)

    def token_guard(
        self,
        identity: Identity,
        model: str,
        *,
        input_tokens: int,
        max_output_tokens: int,
        session_id: uuid.UUID | str | None = None,
    ) -> TokenGuard:
        """Reserve on entry, settle with ``guard.settle(usage)``, release on an exception."""
        refuse_if_closed(self)
        request = GuardRequest(identity, model, input_tokens, max_output_tokens, session_id)
        return TokenGuard(self, request)

    register_agent = sync_method(agents.register_agent)
    get_agent = sync_method(agents.get_agent)
    delegate = sync_method(agents.delegate)
    create_api_key = sync_method(keys.create_api_key)
    list_api_keys = sync_method(keys.list_api_keys)
    get_api_key = sync_method(keys.get_api_key)
    revoke_api_key = sync_method(keys.revoke_api_key)
    authenticate_api_key = sync_method(keys.authenticate_api_key)
    api_key_principal = sync_method(keys.api_key_principal)
    sign_in = sync_method(sign_ins.sign_in)
    signed_in = sync_method(sign_ins.signed_in)
    sign_out = sync_method(sign_ins.sign_out)

    def wait_for_decision(self, ticket_id: uuid.UUID | str, timeout: float) -> Ticket:
        """Wait until the ticket is decided (or expired) or ``timeout`` seconds pass;
        return its state either way. Polls with back-off."""
        refuse_if_closed(self)
        for delay in waiting.delays(timeout):
            ticket = self.get_ticket(ticket_id)
            if not ticket.pending or delay is None:
                return ticket
            time.sleep(delay)
        raise AssertionError("unreachable: waiting.delays ends with None")

    def wait_for_outcome(self, decision: Decision, timeout: float) -> Event:
        """Wait until an outcome is recorded for ``decision`` (claimed by another call) and
        return it; raise ActionInProgressError if ``timeout`` seconds pass first."""
        for delay in waiting.delays(timeout):
            outcome = self.outcome_of(decision)
            if outcome is not None:
                return outcome
            if delay is None:
                raise ActionInProgressError(decision, timeout)
            time.sleep(delay)
        raise AssertionError("unreachable: waiting.delays ends with None")


class AsyncControlPlane(_ControlPlaneBase):
    """The asyncio twin of :class:`ControlPlane`: same methods, awaitable."""

    def __init__(self, engine: AsyncEngine, opening: Opening) -> None:
        super().__init__(engine.dialect, opening)
        self._engine = governed_async_engine(engine)
        self._source_engine = engine
        threaded = threaded_sqlite_engine(engine, opening.pool) if self._owns_engine else None
        self._threaded = None if threaded is None else Connections.for_engine(threaded, owned=True)
        self._boundary = Boundary(engine.dialect, None if threaded is None else threaded.dialect)
        # Kills get a pool of their own: they never wait behind governed calls for one.
        self._urgent_engine: AsyncEngine | None = None
        self._urgent_threaded: Connections | None = None
        self._urgent_executor: ThreadPoolExecutor | None = None
        if threaded is not None:
            urgent = pool_of_its_own(threaded)
            self._urgent_threaded = None if urgent is None else Connections(urgent, keep=0)
            self._urgent_executor = ThreadPoolExecutor(2, thread_name_prefix="acp-kill")
        else:
            urgent = pool_of_its_own(self._engine.sync_engine)
            self._urgent_engine = None if urgent is None else AsyncEngine(urgent)

    @classmethod
    def open(
        cls,
        url: str | URL | AsyncEngine | None = None,
        *,
        schema: str | None = None,
        table_prefix: str | None = None,
        migrate: MigrateMode | None = None,
        fail_open: Iterable[str] = (),
        idempotency_retention: timedelta | None = None,
        audit_key: KeyLike | None = None,
        audit_keys: Iterable[KeyLike] | str | None = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> Opened[AsyncControlPlane]:
        """Open ACP on ``url`` (or a host's ``AsyncEngine``); see :meth:`ControlPlane.open`.

        Await it (``acp = await AsyncControlPlane.open(url)``) or enter it
        (``async with AsyncControlPlane.open(url) as acp:``, which closes it at the end).
        Settings are checked at once, before anything connects.
        """
        opening = resolve(
            url,
            AsyncEngine,
            asyncio=True,
            schema=schema,
            table_prefix=table_prefix,
            migrate=migrate,
            fail_open=fail_open,
            idempotency_retention=idempotency_retention,
            audit_key=audit_key,
            audit_keys=audit_keys,
            pool=(pool_size, max_overflow, pool_timeout, lock_timeout),
        )
        return Opened(lambda: cls._open(opening))

    @classmethod
    async def _open(cls, opening: Opening) -> AsyncControlPlane:
        engine = opening.engine or create_async_engine_for(opening.require_url(), opening.pool)
        control_plane = cls(engine, opening)
        try:
            with control_plane._boundary.translated():
                async with control_plane._engine.connect() as connection:
                    applied = await connection.run_sync(
                        prepare_schema, control_plane._migrator, opening.migrate
                    )
            control_plane._applied = tuple(applied)
            control_plane._knows_its_server(control_plane._engine.dialect)
        except BaseException:
            await control_plane.close()
            raise
        return control_plane

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def schema_revision(self) -> tuple[str, ...]:
        """The ACP revision(s) the database is at."""
        refuse_if_closed(self)
        with self._boundary.translated():
            async with self._engine.connect() as connection:
                return await connection.run_sync(self._migrator.current)

    async def close(self) -> None:
        """Release the connection pool (only if ACP created the engine). Every method
        called afterwards raises ControlPlaneClosedError."""
        self.uninstrument()
        if not self._closed:
            if self._owns_engine:
                await self._source_engine.dispose()
                if self._threaded is not None:
                    self._threaded.close()
                    self._threaded.engine.dispose()
            if self._urgent_engine is not None:
                await self._urgent_engine.dispose()
            if self._urgent_threaded is not None:
                self._urgent_threaded.engine.dispose()
            if self._urgent_executor is not None:
                self._urgent_executor.shutdown(wait=False)
        self._runtime.evaluators.close()
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    open_session = async_method(sessions.open_session)
    get_session = async_method(sessions.get_session)
    list_sessions = async_method(sessions.list_sessions)
    pause_session = async_method(sessions.pause_session)
    resume_session = async_method(sessions.resume_session)
    complete_session = async_method(sessions.complete_session)
    heartbeat = async_method(sessions.heartbeat)
    kill_session = async_method(kills.kill_session)
    kill_agent = async_method(kills.kill_agent)
    kill_tenant = async_method(kills.kill_tenant)
    kill_all = async_method(kills.kill_all)
    lift_kill = async_method(kills.lift_kill)
    list_kills = async_method(kills.list_kills)
    govern = async_method(governing.govern)
    record_outcome = async_method(governing.record_outcome)
    outcome_of = async_method(governing.outcome_of)
    apply_policy = async_method(policies.apply_policy)
    get_policy = async_method(policies.get_policy)
    list_policies = async_method(policies.list_policies)
    emit = async_method(audit.emit)
    _record_event = async_method(audit.record_event)
    events = async_method(audit.events)
    event_feed = async_method(audit.event_feed)
    event_feed_head = async_method(audit.event_feed_head)
    verify_audit = async_method(verification.verify_audit)
    audit_checkpoint = async_method(checkpoints.audit_checkpoint)
    prune_idempotency_keys = async_method(maintenance.prune_idempotency_keys)
    run_maintenance = async_method(maintenance.run_maintenance)
    approve = async_method(approvals.approve)
    deny = async_method(approvals.deny)
    get_ticket = async_method(approvals.get_ticket)
    list_tickets = async_method(approvals.list_tickets)
    count_tickets = async_method(approvals.count_tickets)
    expire_tickets = async_method(approvals.expire_tickets)
    set_token_budget = async_method(tokens.set_token_budget)
    update_token_budget = async_method(tokens.update_token_budget)
    delete_token_budget = async_method(tokens.delete_token_budget)
    list_token_budgets = async_method(tokens.list_token_budgets)
    reserve_tokens = async_method(tokens.reserve_tokens)
    settle = async_method(tokens.settle)
    release = async_method(tokens.release)
    get_reservation = async_method(tokens.get_reservation)
    release_expired_holds = async_method(tokens.release_expired_holds)
    record_usage = async_method(tokens.record_usage)
    token_usage = async_method(tokens.token_usage)
    token_budget_status = async_method(tokens.token_budget_status)

    def token_guard(
        self,
        identity: Identity,
        model: str,
        *,
        input_tokens: int,
        max_output_tokens: int,
        session_id: uuid.UUID | str | None = None,
    ) -> AsyncTokenGuard:
        """Reserve on entry, settle with ``guard.settle(usage)``, release on an exception."""
        refuse_if_closed(self)
        request = GuardRequest(identity, model, input_tokens, max_output_tokens, session_id)
        return AsyncTokenGuard(self, request)

    register_agent = async_method(agents.register_agent)
    get_agent = async_method(agents.get_agent)
    delegate = async_method(agents.delegate)
    create_api_key = async_method(keys.create_api_key)
    list_api_keys = async_method(keys.list_api_keys)
    get_api_key = async_method(keys.get_api_key)
    revoke_api_key = async_method(keys.revoke_api_key)
    authenticate_api_key = async_method(keys.authenticate_api_key)
    api_key_principal = async_method(keys.api_key_principal)
    sign_in = async_method(sign_ins.sign_in)
    signed_in = async_method(sign_ins.signed_in)
    sign_out = async_method(sign_ins.sign_out)

    async def wait_for_decision(self, ticket_id: uuid.UUID | str, timeout: float) -> Ticket:
        """Wait until the ticket is decided (or expired) or ``timeout`` seconds pass;
        return its state either way. Polls with back-off."""
        refuse_if_closed(self)
        for delay in waiting.delays(timeout):
            ticket = await self.get_ticket(ticket_id)
            if not ticket.pending or delay is None:
                return ticket
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: waiting.delays ends with None")

    async def wait_for_outcome(self, decision: Decision, timeout: float) -> Event:
        """Wait until an outcome is recorded for ``decision`` (claimed by another call) and
        return it; raise ActionInProgressError if ``timeout`` seconds pass first."""
        for delay in waiting.delays(timeout):
            outcome = await self.outcome_of(decision)
            if outcome is not None:
                return outcome
            if delay is None:
                raise ActionInProgressError(decision, timeout)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: waiting.delays ends with None")


class Opened(Generic[T]):
    """What ``AsyncControlPlane.open`` returns: await it for the control plane, or use it
    as ``async with`` (the control plane is closed when the block ends)."""

    def __init__(self, opener: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._opener = opener
        self._opened: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._opener().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._opener()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.close()
