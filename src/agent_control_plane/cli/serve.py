"""``acp serve``: run the REST gateway with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_control_plane.cli.common import THE_DEFAULT_TARGET, Target, fail, opened, targeted

if TYPE_CHECKING:
    import uvicorn


@targeted
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    database: Target = THE_DEFAULT_TARGET,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body read, in bytes (413 beyond).", min=1)
    ] = 1024 * 1024,
    waits_per_key: Annotated[
        int, typer.Option(help="Long waits one API key may hold at once (429 beyond).", min=1)
    ] = 8,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            help="Mark the dashboard's cookie Secure on every request (it is already on "
            "requests that came over HTTPS)."
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Comma-separated addresses of proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are trusted ('*' for any); nobody else's are.",
        ),
    ] = "127.0.0.1",
    pool_size: Annotated[
        int | None,
        typer.Option(
            help="Database connections kept open (default 5). Each request that reaches the "
            "database holds one; past this many at once, connections are opened and closed "
            "per request, so raise it for many concurrent clients.",
            min=1,
        ),
    ] = None,
) -> None:
    """Serve the REST gateway (/v1, /openapi.json, /healthz, /readyz) and, with the
    dashboard extra, the operator dashboard (/ui). Create keys first with `acp keys create`;
    the schema must be current (`acp db upgrade`)."""
    try:
        import uvicorn

        from agent_control_plane.gateway import create_app
    except ImportError as exc:
        raise fail(
            f"{exc}. The gateway needs its extra: pip install 'agent-control-plane-sql[gateway]'"
        ) from exc
    with opened(database, pool_size=pool_size) as control_plane:
        app = create_app(
            control_plane,
            max_body_bytes=max_body_bytes,
            waits_per_key=waits_per_key,
            secure_cookies=secure_cookies,
        )
        uvicorn.Server(server_config(app, host, port, log_level, forwarded_allow_ips)).run()


def server_config(
    app: Any, host: str, port: int, log_level: str, forwarded_allow_ips: str
) -> uvicorn.Config:
    """How ``acp serve`` runs ``app``: forwarded headers are read from the trusted proxies
    only, so a client cannot claim HTTPS (or another address) for itself."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )
