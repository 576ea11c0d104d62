"""``acp mcp-proxy``: put governance between an agent's MCP client and a real MCP server."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    Target,
    exit_code_for,
    fail,
    targeted,
)
from agent_control_plane.errors import (
    ConfigurationError,
    ControlPlaneError,
    InvalidInputError,
    PolicyError,
)


@targeted
def mcp_proxy(
    server: Annotated[
        list[str], typer.Argument(help="The MCP server to run, after --: -- python server.py")
    ],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy file with a tools: section; a new session is opened under it.",
        ),
    ] = None,
    database: Target = THE_DEFAULT_TARGET,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Govern this existing session (under its own policy)."),
    ] = None,
    agent_id: Annotated[
        str, typer.Option("--agent-id", help="Agent id of the session the proxy opens.")
    ] = "mcp-proxy",
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant of a new session.")] = None,
    max_cost: Annotated[
        str, typer.Option("--max-cost", help="Cost budget (USD) of a new session.")
    ] = "1.00",
    max_actions: Annotated[
        int, typer.Option("--max-actions", help="Action budget of a new session.")
    ] = 1000,
    hide_blocked: Annotated[
        bool,
        typer.Option("--hide-blocked", help="Leave unmapped and blocked tools out of tools/list."),
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Serve streamable HTTP on HOST:PORT instead of stdio."),
    ] = None,
    allow_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-anonymous",
            help="With --listen: take calls without an API key (a trusted local network only).",
        ),
    ] = False,
) -> None:
    """Proxy MCP over stdio (or HTTP with --listen): every tools/call is governed first.

    Tools map to actions, risk and cost in the policy's tools: section; unmapped tools
    are denied. Nothing is written to stdout but MCP messages.
    """
    try:
        from agent_control_plane.integrations.mcp_proxy.server import (
            ProxySettings,
            parse_listen,
            run,
        )
    except ImportError as exc:
        raise fail(
            f"the MCP proxy needs the mcp extra: pip install 'agent-control-plane-sql[mcp]' ({exc})"
        ) from exc
    try:
        budget = Decimal(max_cost)
    except ArithmeticError:
        raise fail(f"--max-cost takes an amount of USD like 1.00 (got {max_cost!r})") from None
    try:
        settings = ProxySettings(
            server_command=server,
            policy_file=policy,
            url=database.url,
            schema=database.schema,
            table_prefix=database.table_prefix,
            session_id=session,
            agent_id=agent_id,
            tenant=tenant,
            max_cost=budget,
            max_actions=max_actions,
            hide_blocked=hide_blocked,
            listen=None if listen is None else parse_listen(listen),
            anonymous=allow_anonymous,
        )
    except ConfigurationError as exc:
        raise fail(str(exc)) from exc
    try:
        run(settings)
    except (ConfigurationError, PolicyError, InvalidInputError) as exc:
        raise fail(str(exc)) from exc
    except ControlPlaneError as exc:
        raise fail(str(exc), exit_code_for(exc)) from exc
