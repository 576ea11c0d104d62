"""The kill switch on the command line: stop sessions, lift standing kills, list them."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    JsonOption,
    Target,
    cell,
    console,
    emit_json,
    emit_json_list,
    fail,
    opened,
    plain,
    print_table,
    targeted,
)
from agent_control_plane.statuses import KillTarget


@targeted
def kill(
    scope: Annotated[KillTarget, typer.Argument(help="What to stop.")],
    target: Annotated[
        str | None, typer.Argument(help="The session id, agent id or tenant (not with 'all').")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm 'all'.")] = False,
    lift: Annotated[
        bool,
        typer.Option("--lift", help="Lift the standing kill of this agent, tenant or all."),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Recorded in the audit trail.")] = None,
    by: Annotated[str | None, typer.Option(help="Who does it, for the audit trail.")] = None,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Stop sessions now: one session, every open session of an agent or a tenant, or all
    (with --yes). Prints how many were stopped. Killing an agent, a tenant or all also
    bars new sessions there until the kill is lifted with --lift."""
    if (scope is KillTarget.ALL) != (target is None):
        raise fail("give a target for session, agent or tenant, and none for all")
    if lift:
        _lift(scope, target, by, as_json, database)
        return
    if scope is KillTarget.ALL and not yes:
        raise fail("refusing to stop every session without --yes")
    with opened(database) as cp:
        if scope is KillTarget.ALL:
            stopped = cp.kill_all(reason=reason, by=by)
        elif scope is KillTarget.SESSION:
            stopped = cp.kill_session(str(target), reason=reason, by=by)
        elif scope is KillTarget.AGENT:
            stopped = cp.kill_agent(str(target), reason=reason, by=by)
        else:
            stopped = cp.kill_tenant(str(target), reason=reason, by=by)
    if as_json:
        emit_json({"scope": scope.value, "target": target, "stopped": stopped})
        return
    console.print(f"stopped {stopped} session(s)")


def _lift(
    scope: KillTarget,
    target: str | None,
    by: str | None,
    as_json: bool,
    database: Target,
) -> None:
    if scope is KillTarget.SESSION:
        raise fail("a stopped session never reopens: --lift takes agent, tenant or all")
    with opened(database) as cp:
        if scope is KillTarget.AGENT:
            lifted = cp.lift_kill(agent_id=target, by=by)
        elif scope is KillTarget.TENANT:
            lifted = cp.lift_kill(tenant=target, by=by)
        else:
            lifted = cp.lift_kill(by=by)
    if as_json:
        emit_json({"scope": scope.value, "target": target, "lifted": lifted})
        return
    console.print("lifted the kill" if lifted else "no standing kill there: nothing to lift")


@targeted
def kills(
    include_lifted: Annotated[
        bool, typer.Option("--include-lifted", help="Also kills that were lifted.")
    ] = False,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Standing kills: agents, tenants or everything barred from opening sessions."""
    with opened(database) as cp:
        found = cp.list_kills(include_lifted=include_lifted)
    if as_json:
        emit_json_list([plain(kill) for kill in found])
        return
    print_table(
        ("scope", "killed", "since", "by", "reason", "lifted"),
        (
            (
                item.scope,
                item.target,
                item.killed_at,
                item.killed_by,
                item.reason,
                None
                if item.lifted_at is None
                else f"{cell(item.lifted_at)} by {item.lifted_by or '?'}",
            )
            for item in found
        ),
    )
