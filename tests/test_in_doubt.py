"""In-doubt commits: a connection cut at COMMIT gives the real result or
OutcomeUnknownError with a key, and a retry with that key never charges twice.

The proxy either drops the COMMIT (the server rolls back) or forwards it and loses the
reply (the server commits, the client never hears). With new connections still
accepted, ACP looks and returns the real result; with new connections refused, it
cannot look, and says so with the key to retry with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import OutcomeUnknownError
from agent_control_plane.models import Decision
from agent_control_plane.rules.tokens import Identity, TokenUsage
from tests.acp_helpers import engine_for
from tests.databases import TestDatabase, fresh_database
from tests.policies import SUPPORT_BOT
from tests.tcp_proxy import TcpProxy, commit_message, proxied_url, upstream_of

PRICES = {"m": {"input": "1", "output": "1"}}
USAGE = TokenUsage(input_tokens=3, output_tokens=2)
ORG = Identity(org="o")


@dataclass
class Setup:
    database: TestDatabase
    proxy: TcpProxy
    cp: ControlPlane  # through the proxy
    direct: ControlPlane  # straight to the server: to check what committed
    engine: Engine

    @property
    def commit(self) -> bytes:
        return commit_message(self.database.dialect)

    def session(self) -> uuid.UUID:
        return self.direct.open_session(
            agent_id="a", policy=SUPPORT_BOT, max_cost=100, max_actions=100
        ).id

    def used(self, sid: uuid.UUID) -> int:
        return self.direct.get_session(sid).actions_used

    def eventually_used(self, sid: uuid.UUID, expected: int = 1, seconds: float = 5) -> int:
        deadline = time.monotonic() + seconds
        while (used := self.used(sid)) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return used

    def count(self, table: str) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(getattr(self.direct.tables, table))
                ).scalar_one()
            )

    def reserved(self) -> int:
        windows = self.direct.tables.token_windows
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.sum(windows.c.tokens_reserved))).scalar_one())

    def unknown(self, call: object) -> OutcomeUnknownError:
        """Cut at COMMIT (forwarded or not, per the caller's arming), refuse reconnecting:
        the outcome is unknown."""
        with pytest.raises(OutcomeUnknownError) as raised:
            call()  # type: ignore[operator]
        self.proxy.refuse(False)
        assert raised.value.key is not None
        return raised.value

    def cut_decision(self, warm: bool, *, forward: bool, then_refuse: bool = False) -> None:
        """Arm a cut at the moment a govern call commits: its COMMIT, or on PostgreSQL,
        where this process holds the session's head (``warm``), its one statement."""
        if warm and self.database.dialect == "postgresql":
            self.proxy.cut_at(after=1, forward=forward, then_refuse=then_refuse)
        else:
            self.proxy.cut_at(self.commit, forward=forward, then_refuse=then_refuse)


@pytest.fixture(params=("postgresql", "mysql"))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    yield from _setup(request.param, tmp_path)


@pytest.fixture
def pg_setup(tmp_path: Path) -> Iterator[Setup]:
    yield from _setup("postgresql", tmp_path)


def _setup(dialect: str, tmp_path: Path) -> Iterator[Setup]:
    for database in fresh_database(dialect, tmp_path):
        with (
            TcpProxy(*upstream_of(database.url)) as proxy,
            ControlPlane.open(database.url_string) as direct,
            ControlPlane.open(proxied_url(proxy, database.url)) as cp,
            engine_for(database) as engine,
        ):
            for plane in (cp, direct):
                plane.set_prices(PRICES)
            direct.set_token_budget(ORG, "day", max_tokens=10**6)
            yield Setup(database, proxy, cp, direct, engine)


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
@pytest.mark.parametrize("key", [None, "caller-key"], ids=["unkeyed", "keyed"])
def test_govern_cut_at_commit_returns_the_real_decision(
    setup: Setup, committed: bool, key: str | None
) -> None:
    sid = setup.session()
    setup.proxy.cut_at(setup.commit, forward=committed)
    decision = setup.cp.govern(sid, "work", cost="1", idempotency_key=key)
    assert setup.proxy.disarm()  # the cut happened
    assert decision.allowed
    assert setup.used(sid) == 1  # charged exactly once, whichever way the COMMIT went
    (event,) = [e for e in setup.direct.events(sid) if e.kind == "decision"]
    assert event.seq == decision.event_seq
    assert setup.cp.govern(sid, "work", cost="1", idempotency_key=key).event_seq == (
        decision.event_seq if key else decision.event_seq + 1
    )


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
@pytest.mark.parametrize("key", [None, "caller-key"], ids=["unkeyed", "keyed"])
def test_govern_outcome_unknown_gives_a_key_that_never_charges_twice(
    setup: Setup, committed: bool, key: str | None
) -> None:
    sid = setup.session()
    setup.proxy.cut_at(setup.commit, forward=committed, then_refuse=True)
    error = setup.unknown(lambda: setup.cp.govern(sid, "work", cost="1", idempotency_key=key))
    if key is not None:
        assert error.key == key
    # The server may still be finishing the forwarded COMMIT: wait for it to show.
    assert setup.eventually_used(sid, expected=1 if committed else 0) == (1 if committed else 0)
    first = setup.cp.govern(sid, "work", cost="1", idempotency_key=error.key)
    again = setup.cp.govern(sid, "work", cost="1", idempotency_key=error.key)
    assert first.allowed
    assert (again.event_seq, again.outcome) == (first.event_seq, first.outcome)
    assert setup.used(sid) == 1
    assert len([e for e in setup.direct.events(sid) if e.kind == "decision"]) == 1


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
def test_reserve_tokens_cut_at_commit_holds_once(setup: Setup, committed: bool) -> None:
    setup.proxy.cut_at(setup.commit, forward=committed)
    hold = setup.cp.reserve_tokens(ORG, "m", input_tokens=4, max_output_tokens=6)
    assert setup.proxy.disarm()
    assert (setup.count("token_reservations"), setup.reserved()) == (1, 10)
    setup.proxy.cut_at(setup.commit, forward=committed, then_refuse=True)
    error = setup.unknown(
        lambda: setup.cp.reserve_tokens(ORG, "m", input_tokens=4, max_output_tokens=6)
    )
    retried = setup.cp.reserve_tokens(
        ORG, "m", input_tokens=4, max_output_tokens=6, idempotency_key=error.key
    )
    again = setup.cp.reserve_tokens(
        ORG, "m", input_tokens=4, max_output_tokens=6, idempotency_key=error.key
    )
    assert retried.id == again.id != hold.id
    assert (setup.count("token_reservations"), setup.reserved()) == (2, 20)


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
def test_record_usage_and_settle_cut_at_commit_count_once(setup: Setup, committed: bool) -> None:
    setup.proxy.cut_at(setup.commit, forward=committed)
    setup.cp.record_usage(ORG, "m", USAGE)
    assert setup.proxy.disarm()
    assert setup.count("token_ledger") == 1
    hold = setup.direct.reserve_tokens(ORG, "m", input_tokens=4, max_output_tokens=6)
    setup.proxy.cut_at(setup.commit, forward=committed)
    record = setup.cp.settle(hold, USAGE)
    assert setup.proxy.disarm()
    assert record.reservation_id == hold.id
    assert (setup.count("token_ledger"), setup.reserved()) == (2, 0)
    setup.proxy.cut_at(setup.commit, forward=committed, then_refuse=True)
    error = setup.unknown(lambda: setup.cp.record_usage(ORG, "m", USAGE))
    assert error.key is not None
    assert error.key.startswith("acp:usage:")
    setup.cp.record_usage(ORG, "m", USAGE, idempotency_key=error.key)
    setup.cp.record_usage(ORG, "m", USAGE, idempotency_key=error.key)
    assert setup.count("token_ledger") == 3


def test_a_connection_lost_after_the_commit_never_fails_the_call(setup: Setup) -> None:
    sid = setup.session()
    # The COMMIT and its reply go through; the connection dies right after, while the
    # pool resets it on check-in.
    setup.proxy.cut_at(setup.commit, reply=True)
    decision = setup.cp.govern(sid, "work", cost="1")
    assert setup.proxy.disarm()
    assert decision.allowed
    assert setup.used(sid) == 1
    assert setup.cp.govern(sid, "work", cost="1").allowed  # the pool replaced it
    assert setup.used(sid) == 2


async def test_async_govern_cut_at_commit_returns_the_real_decision(setup: Setup) -> None:
    url = proxied_url(setup.proxy, setup.database.async_url)
    sid = setup.session()
    async with AsyncControlPlane.open(url) as acp:
        decisions: list[Decision] = []
        # The first call reads the session's head; the second uses it (one statement on
        # PostgreSQL); after a doubt the head is read again.
        for warm, committed in ((False, False), (True, True)):
            setup.cut_decision(warm, forward=committed)
            decisions.append(await acp.govern(sid, "work", cost="1"))
            assert setup.proxy.disarm()
        setup.cut_decision(False, forward=True, then_refuse=True)
        with pytest.raises(OutcomeUnknownError) as raised:
            await acp.govern(sid, "work", cost="1")
        setup.proxy.refuse(False)
        retried = await acp.govern(sid, "work", cost="1", idempotency_key=raised.value.key)
    assert [d.allowed for d in decisions] == [True, True]
    assert retried.allowed
    assert setup.used(sid) == 3


def test_a_warm_decision_is_one_round_trip_on_postgresql(pg_setup: Setup) -> None:
    sid = pg_setup.session()
    pg_setup.cp.govern(sid, "work", cost="1")  # this process now wrote the last event
    before = pg_setup.proxy.client_writes
    assert pg_setup.cp.govern(sid, "work", cost="1", idempotency_key="k").allowed
    # No ping, no BEGIN, no COMMIT: one statement in autocommit.
    assert pg_setup.proxy.client_writes - before == 1
    assert pg_setup.used(sid) == 2
    assert pg_setup.direct.verify_audit(sid).ok


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
@pytest.mark.parametrize("key", [None, "caller-key"], ids=["unkeyed", "keyed"])
def test_a_one_statement_decision_cut_in_flight_returns_the_real_decision(
    pg_setup: Setup, committed: bool, key: str | None
) -> None:
    setup = pg_setup
    sid = setup.session()
    setup.cp.govern(sid, "work", cost="1")
    setup.cut_decision(True, forward=committed)
    decision = setup.cp.govern(sid, "work", cost="1", idempotency_key=key)
    assert setup.proxy.disarm()
    assert decision.allowed
    assert setup.used(sid) == 2  # charged exactly once, whether the statement ran or not
    decisions = [e for e in setup.direct.events(sid) if e.kind == "decision"]
    assert [e.seq for e in decisions][-1] == decision.event_seq
    assert len(decisions) == 2
    assert setup.direct.verify_audit(sid).ok


@pytest.mark.parametrize("committed", [False, True], ids=["dropped", "committed"])
@pytest.mark.parametrize("key", [None, "caller-key"], ids=["unkeyed", "keyed"])
def test_a_one_statement_decision_outcome_unknown_never_charges_twice(
    pg_setup: Setup, committed: bool, key: str | None
) -> None:
    setup = pg_setup
    sid = setup.session()
    setup.cp.govern(sid, "work", cost="1")
    setup.cut_decision(True, forward=committed, then_refuse=True)
    error = setup.unknown(lambda: setup.cp.govern(sid, "work", cost="1", idempotency_key=key))
    if key is not None:
        assert error.key == key
    assert setup.eventually_used(sid, expected=2 if committed else 1) == (2 if committed else 1)
    first = setup.cp.govern(sid, "work", cost="1", idempotency_key=error.key)
    again = setup.cp.govern(sid, "work", cost="1", idempotency_key=error.key)
    assert first.allowed
    assert first.event_seq == again.event_seq
    assert setup.used(sid) == 2
    assert setup.direct.verify_audit(sid).ok
