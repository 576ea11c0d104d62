"""``acp keys``: create, list and revoke API keys for the REST gateway."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    Target,
    console,
    opened,
    print_table,
    targeted,
)
from agent_control_plane.models import ApiKey
from agent_control_plane.rules.durations import parse_duration
from agent_control_plane.rules.keys import Role

keys_app = typer.Typer(help="API keys for the REST gateway.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _plain(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role,
        "tenant": key.tenant,
        "agents": None if key.agents is None else list(key.agents),
        "created_at": _when(key.created_at),
        "expires_at": _when(key.expires_at),
        "last_used_at": _when(key.last_used_at),
        "revoked_at": _when(key.revoked_at),
    }


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--expires-in") from None


@keys_app.command("create")
@targeted
def keys_create(
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            help="An agent the key acts as (agent keys; repeat for more, * matches any "
            "characters, --agent '*' for every agent).",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Confine the key to this tenant.")] = None,
    name: Annotated[str | None, typer.Option(help="A label (shown as the approver).")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Stop working after this long, e.g. 12h or 90d.")
    ] = None,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Create a key and print it; it is shown this once and cannot be recovered."""
    lifetime = _duration(expires_in)
    with opened(database) as cp:
        issued = cp.create_api_key(
            role.value, tenant=tenant, name=name, agents=agent or None, expires_in=lifetime
        )
    if as_json:
        typer.echo(json.dumps({**_plain(issued.api_key), "key": issued.key}))
        return
    typer.echo(issued.key)
    described = _plain(issued.api_key)
    console.print(
        f"key id {issued.key_id}, role {role.value}"
        + (f", tenant {tenant}" if tenant else "")
        + (f", agents {', '.join(issued.api_key.agents)}" if issued.api_key.agents else "")
        + (f", expires {described['expires_at']}" if described["expires_at"] else "")
        + ": store the key now, it is not shown again",
        highlight=False,
    )


@keys_app.command("list")
@targeted
def keys_list(
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Every key (never its secret), oldest first."""
    with opened(database) as cp:
        keys = cp.list_api_keys()
    if as_json:
        typer.echo(json.dumps([_plain(key) for key in keys]))
        return
    columns = ("key id", "name", "role", "tenant", "agents", "created", "expires", "last used")
    print_table(
        (*columns, "revoked"),
        (list({**_plain(key), "agents": ", ".join(key.agents or ())}.values()) for key in keys),
    )


@keys_app.command("revoke")
@targeted
def keys_revoke(
    key_id: str,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Revoke a key now; requests presenting it get 401 from then on."""
    with opened(database) as cp:
        key = cp.revoke_api_key(key_id)
    console.print(f"revoked {key.key_id}", highlight=False)
