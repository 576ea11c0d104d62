"""Liveness and readiness probes (no API key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_control_plane.gateway.auth import Plane
from agent_control_plane.gateway.bodies import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Any:
    """The process is up (touches nothing else)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health)
def readyz(plane: Plane) -> Any:
    """The database answers and ACP's schema is at this package's revision; 503 otherwise."""
    revision = plane.schema_revision()
    plane.migrator.require_current(revision)
    return Health(status="ready", revision=list(revision))
