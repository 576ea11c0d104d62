"""Closed means closed: after close() (or the end of a with block) every method raises
ControlPlaneClosedError and writes nothing, sync and async."""

from __future__ import annotations

from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ControlPlaneClosedError
from agent_control_plane.rules.tokens import Identity
from tests.acp_helpers import engine_for
from tests.databases import TestDatabase
from tests.method_calls import (
    CALLS,
    NO_DATABASE,
    Prep,
    public_methods,
    raised_by,
    snapshot,
    uncovered,
)


def test_every_public_method_has_a_call_to_try() -> None:
    assert uncovered(ControlPlane) == set()
    assert uncovered(AsyncControlPlane) == set()


def _calls(prep: Prep) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    table = {**CALLS, **NO_DATABASE}
    return [(name, *table[name](prep)) for name in public_methods(ControlPlane) if name in table]


def test_a_closed_control_plane_refuses_every_method(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as prep_cp:
        prep = Prep(prep_cp)
        with ControlPlane.open(database.url_string) as cp:
            sid = cp.open_session(agent_id="a", policy=prep.policy_id, max_cost=1, max_actions=1).id
        calls = _calls(prep)
        with engine_for(database) as engine:
            before = snapshot(engine, prep_cp)
            for name, args, kwargs in calls:
                with pytest.raises(ControlPlaneClosedError, match="closed"):
                    getattr(cp, name)(*args, **kwargs)
            assert snapshot(engine, prep_cp) == before
        assert len(calls) > 50
        # Already governed-in objects refuse too.
        with pytest.raises(ControlPlaneClosedError):
            cp.govern(sid, "work")
        cp.close()  # closing again is allowed


async def test_a_closed_async_control_plane_refuses_every_method(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as prep_cp:
        prep = Prep(prep_cp)
        async with AsyncControlPlane.open(database.async_url_string) as cp:
            pass
        calls = _calls(prep)
        with engine_for(database) as engine:
            before = snapshot(engine, prep_cp)
            for name, args, kwargs in calls:
                error = await raised_by(getattr(cp, name), args, kwargs)
                assert isinstance(error, ControlPlaneClosedError), (name, error)
            assert snapshot(engine, prep_cp) == before
        await cp.close()


def test_a_decorated_function_and_a_token_guard_made_before_closing_refuse(
    database: TestDatabase,
) -> None:
    cp = ControlPlane.open(database.url_string)
    sid = cp.open_session(
        agent_id="a", policy={"name": "p", "default": "allow"}, max_cost=1, max_actions=5
    ).id
    ran: list[int] = []

    @cp.governed("work", session=sid)
    def work() -> None:
        ran.append(1)

    guard = cp.token_guard(Identity(org="o"), "m", input_tokens=1, max_output_tokens=1)
    cp.close()
    with pytest.raises(ControlPlaneClosedError):
        work()
    with pytest.raises(ControlPlaneClosedError), guard:
        pass
    assert ran == []
