"""A small file-system MCP server: list, read, write and delete files under one folder.

It knows nothing about governance; ``acp mcp-proxy`` in front of it decides which calls
reach it. Run on its own: ``python fs_server.py FOLDER`` (speaks MCP over stdio).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
server = MCPServer("example-fs")


def _inside(path: str) -> Path:
    target = (ROOT / path).resolve()
    if not target.is_relative_to(ROOT):
        raise ValueError(f"{path} is outside {ROOT}")
    return target


@server.tool()
def list_dir(path: str = ".") -> list[str]:
    """List the names in a folder."""
    return sorted(entry.name for entry in _inside(path).iterdir())


@server.tool()
def read_file(path: str) -> str:
    """Read a text file."""
    return _inside(path).read_text(encoding="utf-8")


@server.tool()
def write_file(path: str, text: str) -> str:
    """Write a text file (replacing it)."""
    _inside(path).write_text(text, encoding="utf-8")
    return f"wrote {len(text)} characters to {path}"


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file."""
    _inside(path).unlink()
    return f"deleted {path}"


if __name__ == "__main__":
    server.run()
