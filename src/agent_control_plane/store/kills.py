"""Standing kills: the rows that bar new sessions of a killed agent, tenant or everything.

Every kill of a scope and every session opening first lock one row, the kill of "all":
a kill locks it exclusively, an opening shares it. So an opening either commits before
the kill's sweep (which then stops its session) or reads the standing kills after the
kill committed (and is refused). The row is created on first use, so tables created
by hand need no seed row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from agent_control_plane.models import StandingKill
from agent_control_plane.runtime import Runtime
from agent_control_plane.schema.tables import AcpTables
from agent_control_plane.statuses import KillScope
from agent_control_plane.store.dialect import upsert
from agent_control_plane.store.prepared import fetch

ANY = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """One standing kill's key; ANY ('') where the kill names no tenant or agent."""

    scope: KillScope
    tenant: str = ANY
    agent_id: str = ANY

    def key(self) -> dict[str, str]:
        return {"scope": self.scope, "tenant": self.tenant, "agent_id": self.agent_id}

    def where(self, table: Any) -> Any:
        return and_(*(table.c[name] == value for name, value in self.key().items()))


EVERYTHING = Scope(KillScope.ALL)


@lru_cache(maxsize=32)
def _lock_everything(tables: AcpTables, exclusive: bool) -> Select[Any]:
    table = tables.kill_switches
    return select(table.c.active).where(EVERYTHING.where(table)).with_for_update(read=not exclusive)


def lock_everything(connection: Connection, runtime: Runtime, *, exclusive: bool) -> None:
    """Lock the "all" row, creating it (inactive) if it does not exist yet."""
    table = runtime.tables.kill_switches
    query = _lock_everything(runtime.tables, exclusive)
    if not fetch(connection, runtime, query, {}):
        values = {**EVERYTHING.key(), "active": False}
        connection.execute(upsert(runtime, table, values, tuple(EVERYTHING.key())))
        connection.execute(query).one()


def standing(
    connection: Connection, runtime: Runtime, tenant: str | None, agent_id: str
) -> list[StandingKill]:
    """The active kills that cover a session of ``agent_id`` in ``tenant``."""
    query = _standing(runtime.tables, tenant is not None)
    parameters = {"k_tenant": tenant, "k_agent": agent_id}
    return [to_standing(row) for row in fetch(connection, runtime, query, parameters)]


@lru_cache(maxsize=32)
def _standing(tables: AcpTables, with_tenant: bool) -> Select[Any]:
    """Built once: a session opening runs it every time."""
    table = tables.kill_switches
    k = table.c
    agent = bindparam("k_agent", type_=k.agent_id.type)
    tenant = bindparam("k_tenant", type_=k.tenant.type)
    covering = [
        EVERYTHING.where(table),
        and_(k.scope == KillScope.AGENT, k.tenant == ANY, k.agent_id == agent),
    ]
    if with_tenant:
        covering += [
            and_(k.scope == KillScope.TENANT, k.tenant == tenant, k.agent_id == ANY),
            and_(k.scope == KillScope.AGENT, k.tenant == tenant, k.agent_id == agent),
        ]
    return select(table).where(k.active.is_(True), or_(*covering)).order_by(k.scope)


def activate(
    connection: Connection,
    runtime: Runtime,
    scope: Scope,
    reason: str | None,
    by: str | None,
    now: datetime,
) -> None:
    changes = {
        "active": True,
        "reason": reason,
        "killed_at": now,
        "killed_by": by,
        "lifted_at": None,
        "lifted_by": None,
    }
    values = {**scope.key(), **changes}
    table = runtime.tables.kill_switches
    connection.execute(upsert(runtime, table, values, tuple(scope.key()), changes))


def lift(
    connection: Connection, runtime: Runtime, scope: Scope, by: str | None, now: datetime
) -> bool:
    table = runtime.tables.kill_switches
    statement = (
        update(table)
        .where(scope.where(table), table.c.active.is_(True))
        .values(active=False, lifted_at=now, lifted_by=by)
    )
    return bool(connection.execute(statement).rowcount)


def every(connection: Connection, runtime: Runtime, *, active_only: bool) -> list[StandingKill]:
    """Every kill of a scope ever made (the "all" row only once it was used), in order."""
    table = runtime.tables.kill_switches
    k = table.c
    query = select(table).where(k.killed_at.is_not(None))
    if active_only:
        query = query.where(k.active.is_(True))
    query = query.order_by(k.scope, k.tenant, k.agent_id)
    return [to_standing(row._mapping) for row in connection.execute(query)]


def to_standing(row: Any) -> StandingKill:
    return StandingKill(
        scope=KillScope(row["scope"]),
        tenant=row["tenant"] or None,
        agent_id=row["agent_id"] or None,
        active=bool(row["active"]),
        reason=row["reason"],
        killed_at=row["killed_at"],
        killed_by=row["killed_by"],
        lifted_at=row["lifted_at"],
        lifted_by=row["lifted_by"],
    )
