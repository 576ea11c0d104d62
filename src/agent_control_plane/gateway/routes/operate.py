"""Audit verification and stored policies."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from agent_control_plane.errors import PermissionDeniedError
from agent_control_plane.gateway.auth import Operator, Plane, Reader, visible_session
from agent_control_plane.gateway.bodies import AuditReportView, Document, PolicyView, Text
from agent_control_plane.models import PolicySnapshot

router = APIRouter(prefix="/v1", tags=["audit and policies"])


@router.get("/audit/verify", response_model=AuditReportView)
def verify_audit(plane: Plane, principal: Reader, session_id: uuid.UUID | None = None) -> Any:
    """Recompute the hash chains (every session's, or one). A tenant key names a session."""
    if session_id is None and principal.tenant is not None:
        raise PermissionDeniedError("a tenant key verifies one session at a time: pass session_id")
    if session_id is not None:
        visible_session(plane, principal, session_id)
    return plane.verify_audit(session_id)


def _policy_view(snapshot: PolicySnapshot) -> PolicyView:
    return PolicyView(
        id=snapshot.id,
        name=snapshot.name,
        version=snapshot.version,
        digest=snapshot.digest,
        document=snapshot.document.to_json_data(),
        created_at=snapshot.created_at,
    )


@router.post("/policies", status_code=status.HTTP_201_CREATED, response_model=PolicyView)
def apply_policy(document: Document, plane: Plane, principal: Operator) -> Any:
    """Store a policy document as an immutable snapshot (the same document, the same id)."""
    return _policy_view(plane.apply_policy(document))


@router.get("/policies", response_model=list[PolicyView])
def list_policies(
    plane: Plane, principal: Reader, name: Annotated[Text | None, Query()] = None
) -> Any:
    return [_policy_view(snapshot) for snapshot in plane.list_policies(name)]
