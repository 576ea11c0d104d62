"""Latency that ``acp mcp-proxy`` adds to one MCP tools/call: p50 and p99 against calling the
same server directly, measured in the same run with the calls interleaved.

Over stdio the client starts the echo server, or the proxy in front of it. Over streamable
HTTP the client calls the echo server serving HTTP itself, or the proxy serving HTTP (with an
agent's API key, as a deployment would) in front of the echo server on stdio.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import yaml
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from agent_control_plane import ControlPlane

ECHO_SERVER = Path(__file__).with_name("mcp_echo_server.py")
POLICY = {
    "name": "bench-mcp",
    "tiers": {"unrestricted": ["bench.echo"]},
    "tools": {"echo": {"action": "bench.echo", "cost": "0.0001"}},
}
TRANSPORTS = ("stdio", "http")


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@asynccontextmanager
async def _listening(command: list[str], port: int) -> AsyncIterator[str]:
    """Run ``command`` (which serves HTTP on ``port``) until the block ends; yield its /mcp."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=dict(os.environ))
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _stdio(stack: AsyncExitStack, command: list[str]) -> ClientSession:
    parameters = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    read, write = await stack.enter_async_context(stdio_client(parameters))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _http(stack: AsyncExitStack, command: list[str], key: str | None) -> ClientSession:
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    address = await stack.enter_async_context(_listening(command, port))
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=30))
    read, write = await stack.enter_async_context(streamable_http_client(address, http_client=http))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _timed(session: ClientSession, samples: list[float]) -> None:
    started = time.perf_counter()
    result = await session.call_tool("echo", {"text": "ping"})
    samples.append(time.perf_counter() - started)
    assert not result.is_error, result


async def _measure(
    url: str, session_id: str, key: str, transport: str, seconds: float, warmup: int
) -> Latencies:
    server = [sys.executable, str(ECHO_SERVER)]
    proxy = [sys.executable, "-m", "agent_control_plane.cli", "mcp-proxy", "--url", url]
    proxy += ["--session", session_id]
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            direct = await _stdio(stack, server)
            proxied = await _stdio(stack, [*proxy, "--", *server])
        else:
            direct = await _http(stack, [*server, "--http", "{port}"], None)
            listen = ["--listen", "127.0.0.1:{port}"]
            proxied = await _http(stack, [*proxy, *listen, "--", *server], key)
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


def proxy_latencies(url: str, seconds: float, transport: str, warmup: int = 50) -> Latencies:
    """Call the echo server directly and behind ``acp mcp-proxy`` on ``url`` over
    ``transport`` ("stdio" or "http"); time each call."""
    with ControlPlane.open(url) as cp, tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "policy.yaml"
        policy.write_text(yaml.safe_dump(POLICY))
        session = cp.open_session(
            agent_id="bench", policy=policy, max_cost=10**6, max_actions=10**9
        )
        key = cp.create_api_key("agent", name="bench", agents=["bench"]).key
        return anyio.run(_measure, url, str(session.id), key, transport, seconds, warmup)


def main() -> None:
    """``python -m bench.mcp_proxy [sqlite|postgresql|mysql ...]``: only the proxy's rows."""
    from bench.targets import bench_database

    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    for dialect in sys.argv[1:] or ["sqlite", "postgresql"]:
        with bench_database(dialect) as url:
            for transport in TRANSPORTS:
                latencies = proxy_latencies(url, seconds, transport)
                for q in (50, 99):
                    direct, proxied, added = latencies.row(q)
                    print(
                        f"{dialect:10} {transport:5} p{q}: direct {direct:6.2f} ms, "
                        f"proxied {proxied:6.2f} ms, added {added:+6.2f} ms "
                        f"(n={len(latencies.proxied)})",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
