"""Store and read immutable policy snapshots."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent_control_plane.errors import InvalidInputError, PolicyError
from agent_control_plane.loading import load_policy_file
from agent_control_plane.models import PolicySnapshot
from agent_control_plane.operations import remembered
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import validation
from agent_control_plane.rules.policy import PolicyDocument, parse_policy
from agent_control_plane.rules.routing import CompiledPolicy
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import policies as policy_store

PolicySource = PolicyDocument | dict[str, Any] | str | Path | uuid.UUID

_ATTEMPTS = 5


def as_document(source: PolicyDocument | dict[str, Any] | str | Path) -> PolicyDocument:
    if isinstance(source, PolicyDocument | dict):
        return parse_policy(source)
    if not isinstance(source, str | Path):
        raise InvalidInputError(
            "policy",
            "must be a policy document (a dict), the path of a YAML/JSON file, or a stored "
            f"policy's id, not a {type(source).__name__}",
        )
    return load_policy_file(source)


def apply_policy(
    connection: Connection,
    runtime: Runtime,
    policy: PolicyDocument | dict[str, Any] | str | Path,
) -> PolicySnapshot:
    """Store ``policy`` (a document, dict or YAML/JSON path) as an immutable snapshot.

    The same document always maps to the same snapshot; a changed document with the
    same name becomes its next version.
    """
    document = as_document(policy)
    runtime.evaluators.require(document.evaluators())
    for _ in range(_ATTEMPTS):
        try:
            with connection.begin():
                found = policy_store.by_digest(connection, runtime, document.digest)
                snapshot = found or policy_store.insert_next_version(
                    connection, runtime, document, runtime.clock()
                )
        except IntegrityError:
            continue  # a concurrent writer took the digest or the version: look again
        runtime.remember_policy(snapshot.id, CompiledPolicy.compile(snapshot.document))
        return snapshot
    raise PolicyError(f"could not store policy {document.name!r}: too much concurrent change")


def resolve_policy(connection: Connection, runtime: Runtime, policy: PolicySource) -> uuid.UUID:
    """A stored policy's id for ``policy`` given as a document, a path, or a stored id."""
    if isinstance(policy, uuid.UUID):
        remembered.policy(connection, runtime, policy)
        return policy
    if isinstance(policy, str):
        try:
            policy_id = uuid.UUID(policy)
        except ValueError:
            pass
        else:
            return resolve_policy(connection, runtime, policy_id)
    return apply_policy(connection, runtime, policy).id


@repeatable
def get_policy(
    connection: Connection, runtime: Runtime, policy_id: uuid.UUID | str
) -> PolicySnapshot:
    """The stored snapshot with this id (PolicyNotFoundError if none)."""
    with connection.begin():
        return policy_store.get(
            connection, runtime, validation.identifier(policy_id, "policy_id", "a policy")
        )


@repeatable
def list_policies(
    connection: Connection, runtime: Runtime, name: str | None = None
) -> list[PolicySnapshot]:
    """Every stored snapshot (optionally of one name), oldest version first."""
    name = validation.text(name, "name", optional=True)
    with connection.begin():
        return policy_store.listing(connection, runtime, name)
