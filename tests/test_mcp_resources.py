"""The example file-system server behind ``acp mcp-proxy``: every spelling of a path the
policy denies is denied, and never reaches the server.

The server runs under an audit hook (``mcp_tools/recording.py``) that records each file
and folder it opens or lists, so "never reaches" is what the server did, not what the
proxy said.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_control_plane import ControlPlane
from tests.mcp_helpers import TOOLS, connected, text

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parent.parent / "examples" / "mcp_proxy"
SECRET = "hunter2"

# Each is a way to name secrets/key.txt (or the secrets folder) that the policy's
# "file:secrets/*" once let through; {root} is the folder the server serves.
ATTACKS: list[tuple[str, dict[str, str]]] = [
    ("read_file", {"path": "secrets/key.txt"}),
    ("read_file", {"path": "./secrets/key.txt"}),
    ("read_file", {"path": "x/../secrets/key.txt"}),
    ("read_file", {"path": "{root}/secrets/key.txt"}),
    ("read_file", {"path": "{root}/./x/../secrets/key.txt"}),
    ("list_dir", {"path": "secrets"}),
    ("list_dir", {"path": "secrets/"}),
    ("list_dir", {"path": "./secrets/."}),
    ("read_file", {"path": "secrets//key.txt"}),
    ("read_file", {"path": "x/%2e%2e/secrets/key.txt"}),
    ("read_file", {"path": "%73ecrets/key.txt"}),
    ("read_file", {"path": "secrets%2fkey.txt"}),
    ("read_file", {"path": "SECRETS/key.txt"}),
    ("read_file", {"path": "secrets\\key.txt"}),
    ("read_file", {"path": "x\\..\\secrets\\key.txt"}),
    ("read_file", {"path": "secrets/key.txt%00"}),
    ("read_file", {"path": "../files/secrets/key.txt"}),
    ("read_file", {"path": "%2e%2e/files/secrets/key.txt"}),
    ("read_file", {"path": "/etc/hostname"}),
    ("write_file", {"path": "./secrets/key.txt", "text": "owned"}),
]


def example_policy(folder: Path, tmp_path: Path) -> Path:
    """The example's own policy, its server root set to the folder this test serves."""
    document = yaml.safe_load((EXAMPLE / "policy.yaml").read_text())
    for mapping in document["tools"].values():
        if "root" in mapping:
            mapping["root"] = str(folder)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def served_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    (folder / "secrets").mkdir(parents=True)
    (folder / "notes.txt").write_text("buy milk\n")
    (folder / "secrets" / "key.txt").write_text(f"{SECRET}\n")
    return folder


def recorded_server(tmp_path: Path, folder: Path) -> list[str]:
    """The example server, run under the audit hook that logs what it touches."""
    recorder = TOOLS / "recording.py"
    log = tmp_path / "touched.log"
    return [
        sys.executable,
        str(recorder),
        str(log),
        str(folder),
        str(EXAMPLE / "fs_server.py"),
        str(folder),
    ]


def touched(tmp_path: Path) -> list[str]:
    log = tmp_path / "touched.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_every_spelling_of_a_denied_path_is_denied_before_the_server(
    tmp_path: Path, core_database: str, transport: str
) -> None:
    url = core_database
    with ControlPlane.open(url):
        pass  # the proxy only verifies the schema
    folder = served_folder(tmp_path)
    answers: list[tuple[str, dict[str, Any], bool, str, dict[str, Any]]] = []
    options = ["--policy", str(example_policy(folder, tmp_path)), "--agent-id", "fs-agent"]
    server = recorded_server(tmp_path, folder)
    async with connected(transport, tmp_path, url, *options, server=server) as client:
        allowed = await client.call_tool("read_file", {"path": "./notes.txt"})
        assert not allowed.is_error, text(allowed)
        assert text(allowed) == "buy milk\n"
        for tool, template in ATTACKS:
            arguments = {k: v.replace("{root}", str(folder)) for k, v in template.items()}
            result = await client.call_tool(tool, arguments)
            meta = (result.meta or {}).get("agent_control_plane", {})
            answers.append((tool, arguments, bool(result.is_error), text(result), meta))

    leaked = [(tool, args, said) for tool, args, _, said, _ in answers if SECRET in said]
    assert leaked == []
    let_through = [(tool, args) for tool, args, refused, _, _ in answers if not refused]
    assert let_through == []
    reasons = {meta.get("reason") for *_, meta in answers}
    assert reasons <= {"assets.out_of_scope", "assets.invalid_resource"}, answers
    # The server opened notes.txt for the one allowed read, and nothing else.
    assert touched(tmp_path) == ["open notes.txt"]

    with ControlPlane.open(url) as cp:
        (session,) = cp.list_sessions(agent_id="fs-agent").items
        events = cp.events(session.id)
        assert cp.verify_audit(session_id=session.id).ok
    decisions = [e for e in events if e.kind == "decision"]
    assert [d.outcome for d in decisions] == ["allowed"] + ["denied"] * len(ATTACKS)
    # What the trail holds is the canonical resource, whatever the agent wrote.
    resources = [d.payload["resource"] for d in decisions]
    assert resources[0] == "file:notes.txt"
    assert resources[1:4] == ["file:secrets/key.txt"] * 3
    assert resources[4] == "file:secrets/key.txt"  # the absolute path, under the root
    assert resources[6] == "file:secrets"  # list_dir("secrets")
    assert [e.outcome for e in events if e.kind == "outcome"] == ["succeeded"]
