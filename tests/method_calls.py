"""One valid call of every public method of ControlPlane / AsyncControlPlane.

The boundary and closed-client tests enumerate the public methods from the class and
look each one up here, so a method added to the class without an entry fails them.
Each entry builds its arguments from what :class:`Prep` makes on demand, through a
control plane of its own that the test does not disturb (a fresh ticket to approve, a
held reservation to settle, …), so a call can be made again and again.
"""

from __future__ import annotations

import inspect
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from agent_control_plane import ControlPlane
from agent_control_plane.models import Decision
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.policies import SUPPORT_BOT

_names = itertools.count()
PRICES = {"m": {"input": "1", "output": "2"}}
USAGE = TokenUsage(input_tokens=10, output_tokens=5)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@dataclass
class Prep:
    """Makes what a call needs, through ``cp`` (a control plane the test leaves alone)."""

    cp: ControlPlane
    policy_id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        self.cp.set_prices(PRICES)
        self.policy_id = self.cp.apply_policy(SUPPORT_BOT).id

    def session(self, agent: str = "agent", tenant: str | None = None) -> uuid.UUID:
        return self.cp.open_session(
            agent_id=agent, tenant=tenant, policy=self.policy_id, max_cost=100, max_actions=100
        ).id

    def paused(self) -> uuid.UUID:
        sid = self.session()
        self.cp.pause_session(sid)
        return sid

    def decision(self) -> Decision:
        return self.cp.govern(self.session(), "work", cost="1")

    def finished(self) -> Decision:
        """A decision whose outcome is recorded: waiting for it returns at once."""
        decision = self.decision()
        self.cp.record_outcome(decision, "succeeded")
        return decision

    def ticket(self) -> uuid.UUID:
        ticket = self.cp.govern(self.session(), "issue_refund").ticket_id
        assert ticket is not None
        return ticket

    def budget(self) -> uuid.UUID:
        return self.cp.set_token_budget(Identity(org=unique("org")), "day", max_tokens=10**6).id

    def reservation(self) -> uuid.UUID:
        org = unique("org")
        self.cp.set_token_budget(Identity(org=org), "day", max_tokens=10**6)
        return self.cp.reserve_tokens(
            Identity(org=org), "m", input_tokens=10, max_output_tokens=10
        ).id

    def key_id(self) -> str:
        return self.cp.create_api_key("agent", agents=["bot-1"], name=unique("key")).key_id

    def raw_key(self) -> str:
        return self.cp.create_api_key("agent", agents=["bot-1"], name=unique("key")).key

    def sign_in_token(self) -> str:
        viewer = self.cp.create_api_key("viewer", name=unique("key")).key
        return self.cp.sign_in(viewer).token

    def agent(self) -> str:
        agent_id = unique("agent")
        self.cp.register_agent(agent_id, capabilities=["x"])
        return agent_id


Args = tuple[tuple[Any, ...], dict[str, Any]]


def _a(*args: Any, **kwargs: Any) -> Args:
    return args, kwargs


# name -> the arguments of one valid call; each call gets fresh things from Prep.
CALLS: dict[str, Callable[[Prep], Args]] = {
    "open_session": lambda p: _a(agent_id="a", policy=p.policy_id, max_cost=1, max_actions=1),
    "get_session": lambda p: _a(p.session()),
    "list_sessions": lambda p: _a(),
    "pause_session": lambda p: _a(p.session()),
    "resume_session": lambda p: _a(p.paused()),
    "complete_session": lambda p: _a(p.session()),
    "heartbeat": lambda p: _a(p.session()),
    "kill_session": lambda p: _a(p.session(), "stop"),
    "kill_agent": lambda p: _a(unique("agent"), "stop"),
    "kill_tenant": lambda p: _a(unique("tenant"), "stop"),
    "kill_all": lambda p: _a("stop"),
    "lift_kill": lambda p: _a(agent_id="nobody"),
    "list_kills": lambda p: _a(),
    "govern": lambda p: _a(p.session(), "work", cost="1"),
    "record_outcome": lambda p: _a(p.decision(), "succeeded"),
    "apply_policy": lambda p: _a({**SUPPORT_BOT, "name": unique("policy")}),
    "get_policy": lambda p: _a(p.policy_id),
    "list_policies": lambda p: _a(),
    "emit": lambda p: _a(p.session(), "app.note", {"n": 1}),
    "events": lambda p: _a(p.session()),
    "event_feed": lambda p: _a(),
    "event_feed_head": lambda p: _a(),
    "verify_audit": lambda p: _a(p.session()),
    "prune_idempotency_keys": lambda p: _a(),
    "run_maintenance": lambda p: _a(),
    "approve": lambda p: _a(p.ticket(), "boss"),
    "deny": lambda p: _a(p.ticket(), "boss", "no"),
    "get_ticket": lambda p: _a(p.ticket()),
    "list_tickets": lambda p: _a(),
    "count_tickets": lambda p: _a(),
    "expire_tickets": lambda p: _a(),
    "wait_for_decision": lambda p: _a(p.ticket(), 0),
    "set_token_budget": lambda p: _a(Identity(org=unique("org")), "day", max_tokens=10),
    "update_token_budget": lambda p: _a(p.budget(), max_tokens=20),
    "delete_token_budget": lambda p: _a(p.budget()),
    "list_token_budgets": lambda p: _a(),
    "reserve_tokens": lambda p: _a(Identity(org="o"), "m", input_tokens=1, max_output_tokens=1),
    "settle": lambda p: _a(p.reservation(), USAGE),
    "release": lambda p: _a(p.reservation()),
    "release_expired_holds": lambda p: _a(),
    "record_usage": lambda p: _a(Identity(org="o"), "m", USAGE),
    "token_usage": lambda p: _a(),
    "token_budget_status": lambda p: _a(),
    "register_agent": lambda p: _a(unique("agent")),
    "get_agent": lambda p: _a(p.agent()),
    "delegate": lambda p: _a(p.agent(), p.agent(), "task"),
    "create_api_key": lambda p: _a("agent", agents=["bot-1"]),
    "list_api_keys": lambda p: _a(),
    "get_api_key": lambda p: _a(p.key_id()),
    "revoke_api_key": lambda p: _a(p.key_id()),
    "authenticate_api_key": lambda p: _a(p.raw_key()),
    "api_key_principal": lambda p: _a(p.key_id()),
    "sign_in": lambda p: _a(p.raw_key()),
    "signed_in": lambda p: _a(p.sign_in_token()),
    "sign_out": lambda p: _a(p.sign_in_token()),
    "audit_checkpoint": lambda p: _a(signing_key=Ed25519PrivateKey.generate()),
    "get_reservation": lambda p: _a(p.reservation()),
    "outcome_of": lambda p: _a(p.decision()),
    "wait_for_outcome": lambda p: _a(p.finished(), 0),
    "schema_revision": lambda p: _a(),
}

# Methods that touch no database: they are configuration, or build an object whose own
# calls are the methods above (a token guard reserves with reserve_tokens).
NO_DATABASE: dict[str, Callable[[Prep], Args]] = {
    "set_prices": lambda p: _a(PRICES),
    "set_model_policy": lambda p: _a(None),
    "register_evaluator": lambda p: _a("yes", lambda params, proposal: True),
    "instrument": lambda p: _a(),
    "governed": lambda p: _a("work"),
    "session_scope": lambda p: _a(uuid.uuid4()),
    "remembered_principal": lambda p: _a(p.raw_key()),
    "token_guard": lambda p: _a(Identity(org="o"), "m", input_tokens=1, max_output_tokens=1),
}
# Lifecycle, not governance: opening is tested on its own, closing twice is allowed.
LIFECYCLE = frozenset({"open", "close", "uninstrument"})


def public_methods(cls: type) -> list[str]:
    """Every public method of ``cls`` (properties excluded), in name order."""
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        and callable(member)
        and not isinstance(inspect.getattr_static(cls, name), property)
    )


def uncovered(cls: type) -> set[str]:
    """Public methods that have no entry: a new method must get one."""
    return set(public_methods(cls)) - set(CALLS) - set(NO_DATABASE) - LIFECYCLE


def snapshot(engine: Engine, cp: ControlPlane) -> list[tuple[Any, ...]]:
    """A fingerprint of every row of every ACP table: what "nothing written" means.

    Read in one statement: on PostgreSQL and MariaDB each table's row count and a hash
    of its rows computed by the server; SQLite (local) gives its rows themselves.
    """
    tables = cp.tables.all()
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            return [
                (table.name, *row)
                for table in tables
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
        quote = engine.dialect.identifier_preparer.format_table
        parts = []
        for table in tables:
            if dialect == "postgresql":
                digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            else:
                columns = ", ".join(f"COALESCE(HEX(t.`{c.name}`), 'N')" for c in table.columns)
                digest = f"COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', {columns}))), 0)"
            parts.append(f"SELECT '{table.name}', COUNT(*), {digest} FROM {quote(table)} t")
        return [tuple(row) for row in connection.exec_driver_sql(" UNION ALL ".join(parts))]


async def raised_by(
    method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Exception | None:
    """Call ``method`` (awaiting it if it is a coroutine); the exception it raised, if any."""
    try:
        result = method(*args, **kwargs)
        if inspect.isawaitable(result):
            await result
    except Exception as error:
        return error
    return None


def cleanup(name: str, prep: Prep) -> None:
    """Undo what a call leaves standing that would stop the next preparation."""
    if name == "kill_all":
        prep.cp.lift_kill()


TTL = timedelta(minutes=10)
