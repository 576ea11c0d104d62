"""A small real MCP server for the proxy tests: every tool run is appended to a file.

The file named by ACP_TEST_TOOL_LOG gets one JSON line per execution, so a test can
prove what the server actually ran (and how often), not what the proxy said.
"""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("counting-tools")


def _ran(tool: str, **arguments: object) -> None:
    with open(os.environ["ACP_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, **arguments}) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    _ran("echo", text=text)
    return text


@server.tool()
def read_file(path: str) -> str:
    """Pretend to read a file."""
    _ran("read_file", path=path)
    return f"contents of {path}"


@server.tool()
def delete_file(path: str) -> str:
    """Pretend to delete a file."""
    _ran("delete_file", path=path)
    return f"deleted {path}"


@server.tool()
def refund(order: str, amount: str) -> str:
    """Pretend to refund an order."""
    _ran("refund", order=order, amount=amount)
    return f"refunded {amount} on {order}"


@server.tool()
def transfer(to: str, amount: str, weight: float = 1.0, score: float = 0.0) -> str:
    """Pretend to move money; weight and score are arguments the agent controls."""
    _ran("transfer", to=to, amount=amount)
    return f"sent {amount} to {to}"


@server.tool()
def shell(command: str) -> str:
    """A tool no policy maps."""
    _ran("shell", command=command)
    return "ran"


@server.tool()
def fail(message: str) -> str:
    """Always fails."""
    _ran("fail", message=message)
    raise RuntimeError(message)


if __name__ == "__main__":
    server.run()
