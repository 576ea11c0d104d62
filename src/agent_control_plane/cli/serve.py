"""``acp serve``: run the REST gateway with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_control_plane.cli.common import PrefixOption, SchemaOption, UrlOption, fail, opened


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
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
    with opened(url, schema, table_prefix) as control_plane:
        uvicorn.run(create_app(control_plane), host=host, port=port, log_level=log_level)
