"""``acp serve`` runs the gateway with uvicorn; ``acp keys`` makes the key it accepts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_control_plane import ControlPlane


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_acp_serve_answers_over_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    with ControlPlane.open(url) as control_plane:
        key = control_plane.create_api_key("viewer").key
    port = _free_port()
    command = [sys.executable, "-m", "agent_control_plane.cli", "serve", "--url", url]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a busy machine imports slowly
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, "acp serve exited"
                assert time.monotonic() < deadline, "acp serve did not start"
                time.sleep(0.1)
        assert ready.json()["status"] == "ready"
        listed = httpx.get(f"{base}/v1/sessions", headers={"Authorization": f"Bearer {key}"})
        assert listed.json() == {"items": [], "next_cursor": None}
        assert httpx.get(f"{base}/v1/sessions").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_acp_serve_keeps_the_pool_size_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pool-size reaches the engine the gateway serves with (concurrent clients beyond
    the default 5 connections would open and close one per request)."""
    import uvicorn
    from typer.testing import CliRunner

    from agent_control_plane.cli import app

    url = f"sqlite:///{tmp_path / 'served.db'}"
    ControlPlane.open(url).close()
    served: list[int] = []

    def run(server: uvicorn.Server) -> None:
        gateway: Any = server.config.app
        served.append(gateway.state.control_plane.engine.pool.size())

    monkeypatch.setattr(uvicorn.Server, "run", run)
    result = CliRunner().invoke(app, ["serve", "--url", url, "--pool-size", "12"])
    assert result.exit_code == 0, result.output
    assert served == [12]
    refused = CliRunner().invoke(app, ["serve", "--url", url, "--pool-size", "0"])
    assert refused.exit_code == 2
