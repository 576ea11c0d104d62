"""``@governed``: every way a call can end is recorded, by one rule for sync and async.

Returned: succeeded. Raised an Exception: failed. Stopped from outside before it finished
(cancelled, timed out, interrupted, a generator closed early): cancelled. Generators are
governed before their first item and recorded when they finish, fail or are closed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_control_plane import AsyncControlPlane, ControlPlane
from agent_control_plane.errors import ActionDenied, ApprovalRequired
from agent_control_plane.models import Event

POLICY: dict[str, Any] = {
    "name": "endings",
    "tiers": {
        "auto_approve": ["fetch", "stream"],
        "always_approve": ["export"],
        "blocked": ["wipe"],
    },
}


def _endings(events: list[Event]) -> list[tuple[str, str | None, Any]]:
    return [
        (event.kind, event.outcome, (event.payload or {}).get("result"))
        for event in events
        if event.kind in ("decision", "outcome")
    ]


async def _async_session(acp: AsyncControlPlane) -> Any:
    return (await acp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=50)).id


def _never_answers(
    acp: AsyncControlPlane, sid: Any
) -> tuple[Callable[[], Coroutine[Any, Any, str]], asyncio.Event]:
    """A governed call that waits forever once it runs, and the event saying it runs."""
    started = asyncio.Event()

    @acp.governed("fetch", session=sid)
    async def fetch() -> str:
        started.set()
        await asyncio.sleep(600)
        return "never"

    return fetch, started


async def test_a_cancelled_call_records_cancelled(async_control_plane: AsyncControlPlane) -> None:
    acp = async_control_plane
    sid = await _async_session(acp)
    fetch, started = _never_answers(acp, sid)

    task = asyncio.create_task(fetch())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _endings(await acp.events(sid)) == [
        ("decision", "allowed", None),
        ("outcome", "cancelled", {"error": "CancelledError", "message": ""}),
    ]


async def test_a_call_timed_out_by_wait_for_records_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _async_session(acp)
    fetch, started = _never_answers(acp, sid)

    # Long enough to be deciding no longer when it fires, on a loaded machine too.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fetch(), timeout=3)
    assert started.is_set()
    (outcome,) = [e for e in await acp.events(sid) if e.kind == "outcome"]
    assert (outcome.outcome, outcome.payload["result"]["error"]) == ("cancelled", "CancelledError")


async def test_a_call_timed_out_by_asyncio_timeout_records_cancelled(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _async_session(acp)
    fetch, started = _never_answers(acp, sid)
    deadlines: list[asyncio.Timeout] = []

    async def caller() -> None:
        async with asyncio.timeout(None) as deadline:
            deadlines.append(deadline)
            await fetch()

    task = asyncio.create_task(caller())
    await started.wait()
    deadlines[0].reschedule(asyncio.get_running_loop().time())  # time is up, now
    with pytest.raises(TimeoutError):
        await task
    outcome = (await acp.events(sid))[-1]
    assert (outcome.kind, outcome.outcome) == ("outcome", "cancelled")


def test_an_interrupted_sync_call_records_cancelled(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=50).id

    @cp.governed("fetch", session=sid)
    def fetch() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch()
    assert _endings(cp.events(sid))[-1] == (
        "outcome",
        "cancelled",
        {"error": "KeyboardInterrupt", "message": ""},
    )


def test_a_generator_is_governed_before_its_first_item(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=50).id
    produced: list[int] = []

    @cp.governed("stream", session=sid)
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            produced.append(i)
            yield i
        return None

    @cp.governed("wipe", session=sid)
    def wipe() -> Iterator[str]:
        produced.append(-1)
        yield "wiped"

    rows = stream(3)
    assert _endings(cp.events(sid)) == []  # nothing decided until it is iterated
    assert list(rows) == [0, 1, 2]
    assert _endings(cp.events(sid)) == [
        ("decision", "allowed", None),
        ("outcome", "succeeded", {"items": 3}),
    ]

    with pytest.raises(ActionDenied):
        next(wipe())
    assert -1 not in produced  # refused before its body ran


def test_a_generator_that_fails_or_is_closed_early(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=50).id

    @cp.governed("stream", session=sid)
    def stream(fail_at: int | None) -> Generator[int, str, None]:
        for i in range(10):
            if i == fail_at:
                raise ConnectionError("feed dropped")
            yield i

    with pytest.raises(ConnectionError):
        list(stream(2))
    for item in stream(None):
        if item == 1:
            break  # the consumer stops early: the generator is closed
    echoes = stream(None)
    assert next(echoes) == 0
    assert echoes.send("ignored") == 1
    echoes.close()
    dropped = stream(None)
    next(dropped)
    del dropped  # garbage collection closes it

    assert [e[1:] for e in _endings(cp.events(sid)) if e[0] == "outcome"] == [
        ("failed", {"error": "ConnectionError", "message": "feed dropped", "items": 2}),
        ("cancelled", {"error": "GeneratorExit", "message": "", "items": 2}),
        ("cancelled", {"error": "GeneratorExit", "message": "", "items": 2}),
        ("cancelled", {"error": "GeneratorExit", "message": "", "items": 1}),
    ]


def test_a_generator_returns_its_value_and_summary(control_plane: ControlPlane) -> None:
    cp = control_plane
    sid = cp.open_session(agent_id="a", policy=POLICY, max_cost=1, max_actions=50).id

    @cp.governed("stream", session=sid, summary=lambda total: {"total": total})
    def summed(values: list[int]) -> Generator[int, None, int]:
        total = 0
        for value in values:
            total += value
            yield value
        return total

    def consume() -> Iterator[int]:
        total = yield from summed([1, 2, 3])
        yield total

    assert list(consume()) == [1, 2, 3, 6]
    outcome = cp.events(sid)[-1]
    assert (outcome.outcome, outcome.payload["result"]) == ("succeeded", {"total": 6, "items": 3})


async def test_an_async_generator_is_governed_like_a_generator(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _async_session(acp)
    produced: list[int] = []

    @acp.governed("stream", session=sid)
    async def stream(n: int, fail_at: int | None = None) -> AsyncGenerator[int, None]:
        for i in range(n):
            if i == fail_at:
                raise ConnectionError("feed dropped")
            produced.append(i)
            yield i

    @acp.governed("export", session=sid)
    async def export() -> AsyncIterator[str]:
        produced.append(-1)
        yield "rows"

    rows = stream(3)
    assert _endings(await acp.events(sid)) == []
    assert [i async for i in rows] == [0, 1, 2]
    with pytest.raises(ConnectionError):
        async for _ in stream(5, fail_at=1):
            pass
    early = stream(5)
    assert await early.__anext__() == 0
    await early.aclose()
    with pytest.raises(ApprovalRequired):
        await export().__anext__()
    assert -1 not in produced

    assert [e[1:] for e in _endings(await acp.events(sid)) if e[0] == "outcome"] == [
        ("succeeded", {"items": 3}),
        ("failed", {"error": "ConnectionError", "message": "feed dropped", "items": 1}),
        ("cancelled", {"error": "GeneratorExit", "message": "", "items": 1}),
    ]


async def test_an_async_generator_cancelled_while_it_waits(
    async_control_plane: AsyncControlPlane,
) -> None:
    acp = async_control_plane
    sid = await _async_session(acp)
    waiting = asyncio.Event()

    @acp.governed("stream", session=sid)
    async def stream() -> AsyncIterator[int]:
        yield 1
        waiting.set()
        await asyncio.sleep(600)
        yield 2

    async def consume() -> None:
        async for _ in stream():
            pass

    task = asyncio.create_task(consume())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    outcome = (await acp.events(sid))[-1]
    assert (outcome.outcome, outcome.payload["result"]["items"]) == ("cancelled", 1)


async def test_a_call_cancelled_while_it_is_decided_still_gets_its_outcome(
    tmp_path: Path,
) -> None:
    """The decision is made (and charged) in a worker thread the cancellation cannot stop:
    the call is recorded cancelled, never left allowed with no outcome."""
    path = tmp_path / "acp.db"
    async with await AsyncControlPlane.open(f"sqlite:///{path}") as acp:
        sid = await _async_session(acp)
        ran: list[str] = []

        @acp.governed("fetch", session=sid)
        async def fetch() -> None:
            ran.append("fetch")

        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # govern waits for this write lock
        task = asyncio.create_task(fetch())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.sleep(0.2)
        blocker.execute("COMMIT")
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the outcome is written once the decision is
            endings = _endings(await acp.events(sid))
            if len(endings) == 2:
                break
            await asyncio.sleep(0.05)
        assert ran == []
        assert endings == [
            ("decision", "allowed", None),
            ("outcome", "cancelled", {"error": "CancelledError", "message": ""}),
        ]
