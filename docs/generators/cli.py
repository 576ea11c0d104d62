"""The CLI reference, from the Typer app itself."""

from __future__ import annotations

import re

import typer
from typer.cli import get_docs_for_click

from agent_control_plane.cli import app


def render() -> str:
    """Every ``acp`` command, its arguments and options, as Typer declares them."""
    command = typer.main.get_command(app)
    markdown = get_docs_for_click(
        obj=command, ctx=typer.Context(command, info_name="acp"), name="acp", title="acp"
    )
    lines = markdown.splitlines()
    # The page has its own title: drop Typer's, and put each command one level down.
    body = lines[1:] if lines and lines[0].startswith("# ") else lines
    return "\n".join(re.sub(r"^(#+) ", r"#\1 ", line) for line in body) + "\n"
