"""One boundary: whatever happens to the database mid-call, every public method raises
one of ACP's documented errors (GovernanceUnavailableError or its subclasses) and leaves
nothing half-written. The database is cut through a TCP proxy the test controls
(PostgreSQL, MariaDB) or locked by another connection (SQLite); the methods come from the
class itself, so a new method is covered as soon as it exists."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import (
    GovernanceBusyError,
    GovernanceUnavailableError,
    OutcomeUnknownError,
)
from tests.acp_helpers import engine_for
from tests.databases import TestDatabase, fresh_database
from tests.method_calls import (
    CALLS,
    PRICES,
    Prep,
    cleanup,
    public_methods,
    raised_by,
    snapshot,
    uncovered,
)
from tests.tcp_proxy import TcpProxy, proxied_url, upstream_of


def cut_points() -> Iterator[int]:
    """Every one of a call's first eight messages, then fewer and fewer (a call that
    reads every budget sends hundreds of messages): 1, 2, …, 8, 10, 12, 15, 18, …"""
    point = 1
    while point < 10_000:
        yield point
        point = point + 1 if point < 8 else point * 5 // 4


@pytest.fixture(params=("postgresql", "mysql"))
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    yield from fresh_database(request.param, tmp_path)


def test_the_calls_cover_every_public_method() -> None:
    assert uncovered(ControlPlane) == set()
    assert uncovered(AsyncControlPlane) == set()


class Trial:
    """Calls each method again and again, cutting its connection at its 1st, 2nd, …
    message (see cut_points), until a call runs to the end before the cut."""

    def __init__(self, proxy: TcpProxy, engine: Engine, prep: Prep) -> None:
        self.proxy = proxy
        self.engine = engine
        self.prep = prep
        self.outcomes: dict[str, Counter[str]] = {}

    async def method(self, name: str, call: Callable[..., Any]) -> None:
        outcomes = self.outcomes.setdefault(name, Counter())
        for cut in cut_points():
            args, kwargs = CALLS[name](self.prep)
            before = snapshot(self.engine, self.prep.cp)
            self.proxy.cut_at(after=cut)
            error = await raised_by(call, args, kwargs)
            if isinstance(error, OutcomeUnknownError):
                outcomes["unknown"] += 1  # may have committed: nothing to compare
            elif isinstance(error, GovernanceUnavailableError):
                outcomes["unavailable"] += 1
                assert error.__cause__ is not None, name
                assert snapshot(self.engine, self.prep.cp) == before, f"{name} wrote, cut {cut}"
            else:
                assert error is None, (name, cut, error)
                outcomes["done"] += 1
            fired = self.proxy.disarm()
            cleanup(name, self.prep)
            if not fired:
                return
        raise AssertionError(f"{name} never ran to the end")

    def check(self) -> None:
        assert set(self.outcomes) == set(CALLS)
        for name, outcomes in self.outcomes.items():
            # Every method met a cut inside it and said so with the documented error.
            assert outcomes["unavailable"] >= 1, (name, outcomes)


def _methods(cls: type) -> list[str]:
    return [name for name in public_methods(cls) if name in CALLS]


@dataclass
class Cut:
    """A server database behind a proxy, and what prepares calls and checks the rows."""

    database: TestDatabase
    proxy: TcpProxy
    prep: Prep
    engine: Engine

    def url(self, *, asynchronous: bool = False) -> str:
        url = self.database.async_url if asynchronous else self.database.url
        return proxied_url(self.proxy, url)


@pytest.fixture
def cut(server_database: TestDatabase) -> Iterator[Cut]:
    database = server_database
    with (
        TcpProxy(*upstream_of(database.url)) as proxy,
        ControlPlane.open(database.url_string) as prep_cp,
        engine_for(database) as engine,
    ):
        yield Cut(database, proxy, Prep(prep_cp), engine)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_every_method_cut_anywhere_fails_documented_and_writes_nothing(
    cut: Cut, kind: str
) -> None:
    trial = Trial(cut.proxy, cut.engine, cut.prep)
    if kind == "sync":
        with ControlPlane.open(cut.url()) as cp:
            cp.set_prices(PRICES)
            for name in _methods(ControlPlane):
                await trial.method(name, getattr(cp, name))
    else:
        async with AsyncControlPlane.open(cut.url(asynchronous=True)) as acp:
            acp.set_prices(PRICES)
            for name in _methods(AsyncControlPlane):
                await trial.method(name, getattr(acp, name))
    trial.check()


async def test_an_unreachable_database_fails_open_and_every_call_documented(cut: Cut) -> None:
    proxy, prep = cut.proxy, cut.prep
    with ControlPlane.open(cut.url()) as cp:
        acp = await AsyncControlPlane.open(cut.url(asynchronous=True))
        try:
            calls = [(name, *CALLS[name](prep)) for name in _methods(ControlPlane)]
            before = snapshot(cut.engine, prep.cp)
            proxy.refuse()
            proxy.drop()
            for name, args, kwargs in calls:
                for plane in (cp, acp):
                    error = await raised_by(getattr(plane, name), args, kwargs)
                    assert isinstance(error, GovernanceUnavailableError), (name, error)
                    assert not isinstance(error, OutcomeUnknownError), name
                    assert error.__cause__ is not None
            with pytest.raises(GovernanceUnavailableError):
                ControlPlane.open(cut.url())
            with pytest.raises(GovernanceUnavailableError):
                await AsyncControlPlane.open(cut.url(asynchronous=True))
            proxy.refuse(False)
            assert snapshot(cut.engine, prep.cp) == before
        finally:
            await acp.close()


async def test_a_locked_sqlite_file_fails_every_call_busy_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "acp.db"
    url = f"sqlite:///{path}"
    with (
        ControlPlane.open(url) as prep_cp,
        engine_for(TestDatabase("sqlite", make_url(url))) as engine,
    ):
        prep = Prep(prep_cp)
        with ControlPlane.open(url, lock_timeout=0.05) as cp:
            async with AsyncControlPlane.open(url, lock_timeout=0.05) as acp:
                for plane in (cp, acp):
                    plane.set_prices(PRICES)
                    calls = [(name, *CALLS[name](prep)) for name in _methods(type(plane))]
                    before = snapshot(engine, prep_cp)
                    blocker = sqlite3.connect(path, timeout=0)
                    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the lock
                    try:
                        for name, args, kwargs in calls:
                            error = await raised_by(getattr(plane, name), args, kwargs)
                            assert isinstance(error, GovernanceBusyError), (name, error)
                            assert "locked" in str(error)
                            assert error.__cause__ is not None
                    finally:
                        blocker.rollback()
                        blocker.close()
                    assert snapshot(engine, prep_cp) == before
                # Once the lock is gone, everything works again.
                assert cp.govern(prep.session(), "work").allowed
                assert (await acp.govern(prep.session(), "work")).allowed


async def test_the_mcp_proxy_denies_a_call_it_cannot_govern(tmp_path: Path) -> None:
    from agent_control_plane.integrations.mcp_proxy.governor import META_KEY, ToolGovernor
    from agent_control_plane.rules.routing import CompiledPolicy

    url = f"sqlite:///{tmp_path / 'acp.db'}"
    policy = {"name": "tools", "tiers": {"auto_approve": ["demo.echo"]}}
    policy["tools"] = {"echo": {"action": "demo.echo", "risk": {"weight": 0.1}}}
    async with AsyncControlPlane.open(url, lock_timeout=0.05) as acp:
        snapshot = await acp.apply_policy(policy)
        session = await acp.open_session(
            agent_id="a", policy=snapshot.id, max_cost=1, max_actions=5
        )
        governor = ToolGovernor(acp, session.id, CompiledPolicy.compile(snapshot.document))
        forwarded: list[bool] = []

        async def forward() -> Any:
            forwarded.append(True)
            raise AssertionError("a call that cannot be governed must not be made")

        blocker = sqlite3.connect(tmp_path / "acp.db", timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            result = await governor.call("echo", {"text": "hi"}, 1, forward)
        finally:
            blocker.rollback()
            blocker.close()
    assert result["isError"]
    assert result["_meta"][META_KEY]["reason"] == "unavailable"
    assert forwarded == []
