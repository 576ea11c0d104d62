"""A gateway over a fresh database, with one API key per role, for the gateway tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from agent_control_plane import ControlPlane
from agent_control_plane.gateway import create_app

POLICY = {
    "name": "gateway-test",
    "tiers": {"always_approve": ["refund"], "auto_approve": ["read"]},
    "risk": {},
    # What an agent key may ask for when it opens a session under this policy.
    "limits": {"max_cost": "10.00", "max_actions": 100},
}


class Client:
    """A synchronous face over httpx's in-process ASGI transport (each call runs the app
    in a fresh event loop; the app's blocking endpoints run in its threadpool)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://acp") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)


@dataclass
class Api:
    """Calls the gateway with one API key."""

    client: Client
    key: str | None

    def _headers(self) -> dict[str, str]:
        return {} if self.key is None else {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request("GET", path, headers=self._headers(), **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.request("POST", path, json=body, headers=self._headers(), **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.client.request("DELETE", path, headers=self._headers())


@dataclass
class Gateway:
    control_plane: ControlPlane
    client: Client

    def as_role(self, role: str, **options: Any) -> Api:
        """A caller with a new key of ``role`` (``tenant=``, ``name=``, ``agents=``, …)."""
        issued = self.control_plane.create_api_key(role, **options)
        return Api(self.client, issued.key)

    def anonymous(self) -> Api:
        return Api(self.client, None)


@contextmanager
def gateway_on(url: str, **open_options: Any) -> Iterator[Gateway]:
    with ControlPlane.open(url, **open_options) as control_plane:
        yield Gateway(control_plane, Client(create_app(control_plane)))


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and reason code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason, body
    assert body["type"] == f"urn:agent-control-plane:problem:{reason}"
    assert body["title"]
    assert body["detail"]
    return body
