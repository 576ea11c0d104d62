"""One StrEnum per status set (statuses.py): the schema's CHECK constraints, the models and
the gateway's schemas all take their values from it, and a member reads as its string."""

from __future__ import annotations

import json
import typing
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import pytest
from pydantic import BaseModel
from sqlalchemy import CheckConstraint

from agent_control_plane import models, statuses
from agent_control_plane.gateway import bodies as schemas
from agent_control_plane.rules import lifecycle
from agent_control_plane.schema.layout import resolve_layout
from agent_control_plane.schema.tables import build_tables
from agent_control_plane.statuses import (
    KillScope,
    KillTarget,
    OutcomeStatus,
    ReservationStatus,
    SessionStatus,
    TicketStatus,
)
from agent_control_plane.store.rows import to_model


def test_a_member_reads_as_its_string() -> None:
    assert SessionStatus("aborted") is SessionStatus.ABORTED
    assert str(SessionStatus.ABORTED) == "aborted"
    assert f"{TicketStatus.PENDING}" == "pending"
    assert json.dumps({"status": ReservationStatus.HELD}) == '{"status": "held"}'


@pytest.mark.parametrize(
    ("table", "column", "statuses_of_it"),
    [
        ("sessions", "status", SessionStatus),
        ("approval_tickets", "status", TicketStatus),
        ("token_reservations", "status", ReservationStatus),
        ("kill_switches", "scope", KillScope),
    ],
)
def test_each_check_constraint_lists_its_set(
    table: str, column: str, statuses_of_it: type[StrEnum]
) -> None:
    tables = build_tables(resolve_layout("sqlite"))
    checks = [
        str(item.sqltext)
        for item in getattr(tables, table).constraints
        if isinstance(item, CheckConstraint) and str(item.sqltext).startswith(f"{column} IN")
    ]
    listed = ", ".join(f"'{member.value}'" for member in statuses_of_it)
    assert checks == [f"{column} IN ({listed})"]


@pytest.mark.parametrize(
    ("model", "field", "statuses_of_it"),
    [
        (models.Session, "status", SessionStatus),
        (models.Ticket, "status", TicketStatus),
        (models.Reservation, "status", ReservationStatus),
        (models.Agent, "status", statuses.AgentStatus),
        (models.Delegation, "status", statuses.DelegationStatus),
        (models.StandingKill, "scope", KillScope),
    ],
)
def test_models_type_their_status(
    model: type[object], field: str, statuses_of_it: type[StrEnum]
) -> None:
    assert typing.get_type_hints(model)[field] is statuses_of_it


@pytest.mark.parametrize(
    ("schema", "field", "statuses_of_it"),
    [
        (schemas.SessionView, "status", SessionStatus),
        (schemas.TicketView, "status", TicketStatus),
        (schemas.ReservationView, "status", ReservationStatus),
        (schemas.RecordOutcome, "status", OutcomeStatus),
        (schemas.Kill, "scope", KillTarget),
        (schemas.Lift, "scope", KillScope),
    ],
)
def test_the_gateway_reads_the_same_sets(
    schema: type[BaseModel], field: str, statuses_of_it: type[StrEnum]
) -> None:
    assert schema.model_fields[field].annotation is statuses_of_it
    published = json.dumps(schema.model_json_schema())
    assert all(f'"{member.value}"' in published for member in statuses_of_it)


def test_a_stored_status_becomes_its_member() -> None:
    now = datetime.now(UTC)
    row = {
        "id": uuid.uuid4(),
        "name": None,
        "agent_id": "a",
        "tenant": None,
        "policy_id": uuid.uuid4(),
        "status": "paused",
        "max_cost": Decimal(1),
        "cost_used": Decimal(0),
        "max_actions": 1,
        "actions_used": 0,
        "expires_at": None,
        "metadata": None,
        "created_at": now,
        "updated_at": now,
        "ended_at": None,
        "end_reason": None,
        "heartbeat_at": None,
    }
    session = to_model(models.Session, row)
    assert session.status is SessionStatus.PAUSED


def test_lifecycle_transitions_use_the_members() -> None:
    assert lifecycle.KILL.target is SessionStatus.ABORTED
    assert set(lifecycle.OPEN_STATUSES) | set(lifecycle.TERMINAL_STATUSES) == set(SessionStatus)
