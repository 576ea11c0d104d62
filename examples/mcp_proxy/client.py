"""An MCP client (standing in for an agent) that reaches the file-system server only
through ``acp mcp-proxy``.

    python examples/mcp_proxy/client.py [--url sqlite:///acp.db]

It starts the proxy exactly as an MCP host (Claude Desktop, an IDE, an agent framework)
would be configured to: ``acp mcp-proxy --policy policy.yaml -- python fs_server.py DIR``.
A person's approval is given in-process here; in real life it is
``acp approvals approve TICKET --by NAME`` from another terminal. The policy names the
folder the server serves (``root: /srv/files``); this demo serves a scratch folder, so it
runs a copy of the policy that names that folder instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import yaml
from mcp import ClientSession, StdioServerParameters, stdio_client

from agent_control_plane import ControlPlane

HERE = Path(__file__).parent


def _text(result: types.CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, types.TextContent))


def _acp(result: types.CallToolResult) -> dict[str, Any]:
    details: dict[str, Any] = (result.meta or {}).get("agent_control_plane", {})
    return details


async def call(client: ClientSession, tool: str, **arguments: Any) -> types.CallToolResult:
    result = await client.call_tool(tool, arguments)
    verdict = f"refused ({_acp(result).get('reason')})" if result.is_error else "ok"
    print(f"{tool}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}): {verdict}")
    print(f"    {_text(result)}")
    return result


def policy_for(folder: Path) -> Path:
    """The example policy, with the scratch folder as the server's root."""
    document = yaml.safe_load((HERE / "policy.yaml").read_text())
    for mapping in document["tools"].values():
        mapping["root"] = str(folder)
    path = folder.parent / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def main(url: str, folder: Path) -> None:
    (folder / "notes.txt").write_text("buy milk\n")
    (folder / "secrets").mkdir()
    (folder / "secrets" / "key.txt").write_text("hunter2\n")
    with ControlPlane.open(url):
        pass  # create ACP's tables; the proxy itself only verifies them
    proxy = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "agent_control_plane.cli", "mcp-proxy"),
            *("--policy", str(policy_for(folder)), "--url", url, "--agent-id", "fs-agent"),
            *("--hide-blocked", "--", sys.executable, str(HERE / "fs_server.py"), str(folder)),
        ],
    )
    async with stdio_client(proxy) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        tools = await client.list_tools()
        print("tools offered:", ", ".join(tool.name for tool in tools.tools))
        await call(client, "list_dir", path=".")
        await call(client, "read_file", path="notes.txt")
        await call(client, "read_file", path="secrets/key.txt")
        await call(client, "read_file", path="./notes/../secrets/key.txt")
        await call(client, "read_file", path=str(folder / "secrets" / "key.txt"))
        await call(client, "list_dir", path="secrets")
        await call(client, "read_file", path="../../etc/passwd")
        await call(client, "delete_file", path="notes.txt")
        pending = await call(client, "write_file", path="todo.txt", text="call mum\n")
        ticket = _acp(pending)["ticket_id"]
        with ControlPlane.open(url, migrate="verify") as cp:
            cp.approve(ticket, by="alice", reason="fine")
        print(f"alice approved ticket {ticket}")
        await call(client, "write_file", path="todo.txt", text="call mum\n")
        await call(client, "write_file", path="todo.txt", text="call mum\n")
    with ControlPlane.open(url, migrate="verify") as cp:
        (session,) = cp.list_sessions(agent_id="fs-agent").items
        print(f"session {session.status}: spent {session.cost_used.normalize()} USD")
        for event in cp.events(session.id):
            print(
                f"  {event.seq:>2} {event.kind:<16} {event.action or '':<10} {event.outcome or ''}"
            )
        print("audit trail verified:", cp.verify_audit(session_id=session.id).ok)
    print("todo.txt:", (folder / "todo.txt").read_text().strip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="ACP database (default: a new SQLite file)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = options.url or f"sqlite:///{Path(scratch) / 'acp.db'}"
        folder = Path(scratch) / "files"
        folder.mkdir()
        anyio.run(main, url, folder)
