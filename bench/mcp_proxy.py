"""Latency that ``acp mcp-proxy`` adds to one MCP tools/call: p50 and p99 against calling the
same server directly, measured in the same run with the calls interleaved."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import yaml
from mcp import ClientSession, StdioServerParameters, stdio_client

from agent_control_plane import ControlPlane

ECHO_SERVER = Path(__file__).with_name("mcp_echo_server.py")
POLICY = {
    "name": "bench-mcp",
    "tiers": {"unrestricted": ["bench.echo"]},
    "tools": {"echo": {"action": "bench.echo", "cost": "0.0001"}},
}


@dataclass(frozen=True, slots=True)
class Latencies:
    """Seconds per tools/call, direct and through the proxy."""

    direct: list[float]
    proxied: list[float]

    @staticmethod
    def percentile(samples: list[float], q: int) -> float:
        return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]

    def row(self, q: int) -> tuple[float, float, float]:
        """(direct, proxied, added) milliseconds at percentile ``q``."""
        direct = self.percentile(self.direct, q) * 1000
        proxied = self.percentile(self.proxied, q) * 1000
        return direct, proxied, proxied - direct


async def _connect(stack: AsyncExitStack, command: list[str]) -> ClientSession:
    parameters = StdioServerParameters(command=command[0], args=command[1:])
    read, write = await stack.enter_async_context(stdio_client(parameters))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _timed(session: ClientSession, samples: list[float]) -> None:
    started = time.perf_counter()
    result = await session.call_tool("echo", {"text": "ping"})
    samples.append(time.perf_counter() - started)
    assert not result.is_error, result


async def _measure(url: str, session_id: str, seconds: float, warmup: int) -> Latencies:
    server = [sys.executable, str(ECHO_SERVER)]
    proxy = [sys.executable, "-m", "agent_control_plane.cli", "mcp-proxy", "--url", url]
    async with AsyncExitStack() as stack:
        direct = await _connect(stack, server)
        proxied = await _connect(stack, [*proxy, "--session", session_id, "--", *server])
        latencies = Latencies([], [])
        for _ in range(warmup):
            await _timed(direct, [])
            await _timed(proxied, [])
        # Interleaved, so drift in the machine's speed hits both alike.
        started = time.perf_counter()
        while time.perf_counter() - started < seconds * 2:
            await _timed(direct, latencies.direct)
            await _timed(proxied, latencies.proxied)
        return latencies


def proxy_latencies(url: str, seconds: float, warmup: int = 20) -> Latencies:
    """Run the echo server directly and behind ``acp mcp-proxy`` on ``url``; time each call."""
    with ControlPlane.open(url) as cp, tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "policy.yaml"
        policy.write_text(yaml.safe_dump(POLICY))
        session = cp.open_session(
            agent_id="bench", policy=policy, max_cost=10**6, max_actions=10**9
        )
        return anyio.run(_measure, url, str(session.id), seconds, warmup)
