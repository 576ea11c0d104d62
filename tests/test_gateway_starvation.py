"""The gateway cannot be starved: a body is read only after the request shows a key and only
up to the limit, a long wait holds no worker thread and each key holds a bounded number of
them; meanwhile ``/healthz`` and an admin's kill answer at once (a real uvicorn, started by
``acp serve``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from agent_control_plane import ControlPlane
from tests.databases import TestDatabase
from tests.gateway_helpers import POLICY, assert_problem, gateway_on
from tests.test_gateway_serve import _free_port

MIB = 1024 * 1024
KEYS = 10
WAITS_PER_KEY = 8


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    admin: str
    viewers: list[str]
    ticket: str
    victim: str

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])


@contextmanager
def served(url: str, *options: str) -> Iterator[Served]:
    """``acp serve`` on ``url`` with an admin key, viewer keys, a pending approval ticket
    and a session to kill."""
    with ControlPlane.open(url) as control_plane:
        admin = control_plane.create_api_key("admin").key
        viewers = [control_plane.create_api_key("viewer").key for _ in range(KEYS)]
        waiting = control_plane.open_session(
            agent_id="bot", policy=POLICY, max_cost=1, max_actions=10
        )
        ticket = control_plane.govern(waiting.id, "refund").ticket_id
        victim = control_plane.open_session(
            agent_id="bot", policy=POLICY, max_cost=1, max_actions=10
        ).id
    port = _free_port()
    command = [sys.executable, "-m", "agent_control_plane.cli", "serve", "--url", url]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *options],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a busy machine imports slowly
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "acp serve exited"
                assert time.monotonic() < deadline, "acp serve did not start"
                time.sleep(0.1)
        yield Served(base, process, admin, viewers, str(ticket), str(victim))
    finally:
        process.terminate()
        process.wait(timeout=30)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _chunks(total: int, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    chunk = b"[" + b" " * (size - 2) + b"]"
    for _ in range(total // size):
        yield chunk
        await asyncio.sleep(0)


async def _send_big(
    client: httpx.AsyncClient, size: int, key: str | None = None, *, streamed: bool = False
) -> int | str:
    """POST ``size`` bytes of JSON-ish body; the status, or how the connection ended when
    the server stopped reading (it may close before the upload ends)."""
    headers = {"Content-Type": "application/json", **({} if key is None else _bearer(key))}
    content = _chunks(size) if streamed else b"[" + b" " * (size - 2) + b"]"
    try:
        response = await client.post("/v1/sessions", content=content, headers=headers)
    except httpx.TransportError as exc:
        return type(exc).__name__
    return response.status_code


async def _timed(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> float:
    started = time.perf_counter()
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


async def _under_siege(server: Served) -> dict[str, object]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    timeout = httpx.Timeout(60)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=timeout) as client:
        wait_path = f"/v1/approvals/{server.ticket}/wait"
        waits = [
            asyncio.create_task(client.get(wait_path, params={"timeout": 20}, headers=_bearer(key)))
            for key in server.viewers
            for _ in range(WAITS_PER_KEY)
        ]
        bodies = [
            asyncio.create_task(_send_big(client, 20 * MIB)),
            asyncio.create_task(_send_big(client, 20 * MIB)),
            asyncio.create_task(_send_big(client, 20 * MIB, streamed=True)),
        ]
        await asyncio.sleep(1.5)  # everything is in flight
        health = await _timed(client, "GET", "/healthz")
        kill = await _timed(
            client,
            "POST",
            "/v1/kill",
            json={"scope": "session", "target": server.victim, "reason": "siege"},
            headers=_bearer(server.admin),
        )
        still_waiting = sum(not task.done() for task in waits)
        body_results = await asyncio.gather(*bodies)
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return {
        "health": health,
        "kill": kill,
        "still_waiting": still_waiting,
        "bodies": body_results,
    }


def test_healthz_and_a_kill_answer_while_bodies_and_waits_pile_up(tmp_path: Path) -> None:
    with served(f"sqlite:///{tmp_path / 'acp.db'}") as server:
        result = asyncio.run(_under_siege(server))
    assert result["still_waiting"] == KEYS * WAITS_PER_KEY, result
    assert float(result["health"]) < 1.0, result  # type: ignore[arg-type]
    assert float(result["kill"]) < 1.0, result  # type: ignore[arg-type]
    # Refused without being read: a 401, or the connection closed under the upload.
    for outcome in result["bodies"]:  # type: ignore[attr-defined]
        assert outcome in (401, "WriteError", "RemoteProtocolError", "ReadError"), result


def test_a_body_past_the_limit_is_refused_declared_or_streamed(database: TestDatabase) -> None:
    with gateway_on(database.url_string) as gateway:
        admin = gateway.as_role("admin")
        big = b"[" + b" " * (2 * MIB) + b"]"
        headers = {"Authorization": f"Bearer {admin.key}", "Content-Type": "application/json"}
        declared = gateway.client.request("POST", "/v1/sessions", content=big, headers=headers)
        assert_problem(declared, 413, "body_too_large")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b" " * MIB

        streamed = gateway.client.request("POST", "/v1/sessions", content=chunks(), headers=headers)
        assert_problem(streamed, 413, "body_too_large")
        assert gateway.control_plane.list_sessions().items == []
        small = admin.post(
            "/v1/sessions", {"agent_id": "bot", "policy": POLICY, "max_cost": "1", "max_actions": 5}
        )
        assert small.status_code == 201, small.text


def test_a_body_without_a_key_is_refused_before_it_is_read(database: TestDatabase) -> None:
    with gateway_on(database.url_string) as gateway:
        read: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                read.append(number)
                yield b" " * 1024

        response = gateway.client.request(
            "POST",
            "/v1/sessions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 401, "unauthenticated")
        assert read == []  # not one chunk was asked for


def test_one_key_holds_a_bounded_number_of_waits(tmp_path: Path) -> None:
    with served(f"sqlite:///{tmp_path / 'acp.db'}", "--waits-per-key", "2") as server:

        async def crowd() -> list[int]:
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
                path = f"/v1/approvals/{server.ticket}/wait"
                headers = _bearer(server.viewers[0])
                waits = [
                    asyncio.create_task(client.get(path, params={"timeout": 3}, headers=headers))
                    for _ in range(2)
                ]
                await asyncio.sleep(1)
                third = await client.get(path, params={"timeout": 3}, headers=headers)
                other = await client.get(
                    path, params={"timeout": 0}, headers=_bearer(server.viewers[1])
                )
                return [third.status_code, other.status_code] + [
                    (await task).status_code for task in waits
                ]

        assert asyncio.run(crowd()) == [429, 200, 200, 200]


def test_event_streams_share_the_keys_wait_slots(tmp_path: Path) -> None:
    with served(f"sqlite:///{tmp_path / 'acp.db'}", "--waits-per-key", "2") as server:
        headers = _bearer(server.viewers[0])

        async def crowd() -> list[int]:
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
                async with client.stream("GET", "/v1/events/stream", headers=headers) as first:
                    assert first.status_code == 200
                    wait = asyncio.create_task(
                        client.get(
                            f"/v1/approvals/{server.ticket}/wait",
                            params={"timeout": 2},
                            headers=headers,
                        )
                    )
                    await asyncio.sleep(0.5)
                    # The stream and the wait hold both slots: a third is refused.
                    third = await client.get("/v1/events/stream", headers=headers)
                    other = await client.get(
                        "/v1/events/stream",
                        params={"max_events": 1, "cursor": "0"},
                        headers=_bearer(server.viewers[1]),
                    )
                    statuses = [third.status_code, other.status_code, (await wait).status_code]
                # The stream ended: its slot is free again.
                again = await client.get(
                    f"/v1/approvals/{server.ticket}/wait", params={"timeout": 0}, headers=headers
                )
                return [*statuses, again.status_code]

        assert asyncio.run(crowd()) == [429, 200, 200, 200]
