"""What the command line says when it refuses: one line, the documented exit code, and any
command it suggests works exactly as printed."""

from __future__ import annotations

import asyncio
import shlex
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_control_plane import AsyncControlPlane, ControlPlane, SchemaNotCurrentError
from agent_control_plane.cli import app
from agent_control_plane.cli.common import ExitCode
from tests.databases import TestDatabase


def _acp(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(arguments))
    return result.exit_code, result.output


@pytest.mark.parametrize("verb", ["upgrade", "downgrade", "stamp"])
def test_an_unknown_revision_is_one_line_and_exit_2(database: TestDatabase, verb: str) -> None:
    with ControlPlane.open(database.url_string):
        pass
    code, output = _acp("db", verb, "no_such_revision", "--url", database.url_string)
    assert code == ExitCode.USAGE
    assert "Traceback" not in output
    (line,) = output.strip().splitlines()
    assert "no_such_revision" in line
    assert "acp db history" in line


def test_verifying_an_unknown_session_says_not_found(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as cp:
        unknown = uuid.uuid4()
        with pytest.raises(Exception, match=f"no session {unknown}") as raised:
            cp.verify_audit(session_id=unknown)
        assert type(raised.value).__name__ == "SessionNotFoundError"
    code, output = _acp("audit", "verify", "--session", str(unknown), "--url", database.url_string)
    assert code == ExitCode.FAILED
    assert f"no session {unknown}" in output


def test_the_upgrade_command_an_async_url_is_told_works_as_printed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'acp.db'}"

    async def refused() -> str:
        with pytest.raises(SchemaNotCurrentError) as raised:
            await AsyncControlPlane.open(url, migrate="verify")
        return raised.value.command

    command = asyncio.run(refused())
    assert "aiosqlite" not in command
    program, *arguments = shlex.split(command)
    assert program == "acp"
    code, output = _acp(*arguments)
    assert code == ExitCode.OK, output

    async def opened() -> None:
        async with await AsyncControlPlane.open(url, migrate="verify"):
            pass

    asyncio.run(opened())


def test_the_mcp_proxy_prints_an_upgrade_command_that_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acp.db'}"
    policy = Path(__file__).resolve().parents[1] / "examples" / "policies" / "support-bot.yaml"
    code, output = _acp("mcp-proxy", "--url", url, "--policy", str(policy), "--", "true")
    assert code == ExitCode.UNAVAILABLE
    command = output.split("Run: ", 1)[1].strip().splitlines()[0]
    program, *arguments = shlex.split(command)
    assert program == "acp"
    assert _acp(*arguments)[0] == ExitCode.OK


def test_a_database_holding_data_downgrades_to_base_and_back(database: TestDatabase) -> None:
    policy = {"name": "p", "tiers": {"auto_approve": ["x"]}}
    with ControlPlane.open(database.url_string) as cp:
        session = cp.open_session(agent_id="a", policy=policy, max_cost=1, max_actions=5)
        cp.record_outcome(cp.govern(session.id, "x", cost="0.1"), "succeeded")
        cp.create_api_key("admin")
    code, output = _acp("db", "downgrade", "base", "--url", database.url_string)
    assert code == ExitCode.OK, output
    assert "applied downgrade acp_0001" in output
    code, output = _acp("db", "upgrade", "--url", database.url_string)
    assert code == ExitCode.OK, output
    with ControlPlane.open(database.url_string, migrate="verify") as cp:
        again = cp.open_session(agent_id="a", policy=policy, max_cost=1, max_actions=5)
        assert cp.govern(again.id, "x").allowed
        if database.dialect == "sqlite":
            # Foreign keys are enforced again once the migration is over.
            with cp.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
