"""The gateway: what checking an API key costs per request, and ``POST …/govern`` over HTTP
(``acp serve``, one uvicorn worker, in a process of its own) against the SDK's ``govern`` in
the same run."""

from __future__ import annotations

import itertools
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from agent_control_plane import ControlPlane
from bench.governing import POLICY
from bench.timing import ops_per_second

_keys = itertools.count()


def key_check_latencies(url: str, seconds: float) -> tuple[float, float]:
    """p50 and p99 milliseconds of ``authenticate_api_key`` for a key in use (what the
    gateway runs for every request)."""
    with ControlPlane.open(url) as cp:
        key = cp.create_api_key("agent", agents=["*"]).key
        for _ in range(20):
            cp.authenticate_api_key(key)
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            cp.authenticate_api_key(key)
            samples.append(time.perf_counter() - started)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _served(url: str) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "agent_control_plane.cli", "serve", "--url", url]
    command += ["--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"acp serve did not start: {server.stderr!r}")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@dataclass(frozen=True, slots=True)
class OverHttp:
    """Requests per second through one ``acp serve`` with one keep-alive client: governed,
    and the HTTP floor (``GET /healthz``: uvicorn, FastAPI and the client, no decision)."""

    govern: float
    healthz: float


def http_govern_ops_per_second(url: str, seconds: float) -> OverHttp:
    """``POST /v1/sessions/{id}/govern`` with an agent key, one keep-alive client; and
    ``GET /healthz`` through the same server and client."""
    with ControlPlane.open(url) as cp:
        key = cp.create_api_key("agent", agents=["*"]).key
        sid = cp.open_session(
            agent_id="bench", policy=POLICY, max_cost=10**8, max_actions=10**12
        ).id
    with _served(url) as base, httpx.Client(base_url=base, timeout=10) as client:
        headers = {"Authorization": f"Bearer {key}"}
        path = f"/v1/sessions/{sid}/govern"

        def one() -> None:
            body = {"action": "work", "cost": "0.0001", "idempotency_key": f"h{next(_keys)}"}
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["allowed"], response.text

        def health() -> None:
            assert client.get("/healthz").status_code == 200

        healthz = ops_per_second(health, seconds)
        return OverHttp(govern=ops_per_second(one, seconds), healthz=healthz)
