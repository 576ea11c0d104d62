"""Signed checkpoints: their sinks (file, directory, webhook), which one verification
trusts, and the commands that take and check them."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from agent_control_plane import ConfigurationError, ControlPlane
from agent_control_plane.checkpoint_io import CheckpointDirectory, read_checkpoints
from agent_control_plane.cli import app
from agent_control_plane.errors import CheckpointSinkError
from agent_control_plane.rules.checkpoints import Checkpoint
from tests.databases import TestDatabase
from tests.maintenance_helpers import webhook_server
from tests.tamper import Attacker, standard_session, unkeyed

KEY = "checkpoint tests' audit key: 32 bytes or more"
runner = CliRunner()


def _acp(*args: str, key: str | None = KEY) -> tuple[int, str]:
    env = {} if key is None else {"ACP_AUDIT_KEY": key}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _problems(
    cp: ControlPlane, checkpoints: object, checkpoint_keys: object = None
) -> list[tuple[uuid.UUID | None, str]]:
    report = cp.verify_audit(checkpoints=checkpoints, checkpoint_keys=checkpoint_keys)
    return [(p.session_id, p.problem) for p in report.problems]


def test_concurrent_appends_to_one_file_never_interleave(
    database: TestDatabase, tmp_path: Path
) -> None:
    sink = tmp_path / "checkpoints.jsonl"
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        for _ in range(30):  # big enough lines that unlocked appends could interleave
            standard_session(cp)

        def take() -> None:
            for _ in range(5):
                cp.audit_checkpoint(sink)

        threads = [threading.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found, unreadable = read_checkpoints(sink)
        assert (len(found), unreadable) == (20, [])
        assert {c.sessions for c in found} == {30}
        assert cp.verify_audit(checkpoints=sink).ok


def test_a_directory_gets_a_new_file_each_time_and_never_an_overwrite(
    database: TestDatabase, tmp_path: Path
) -> None:
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        sid = standard_session(cp)
        first = cp.audit_checkpoint(tmp_path)
        cp.govern(sid, "work")
        cp.audit_checkpoint(tmp_path)
        files = sorted(tmp_path.glob("checkpoint-*.json"))
        assert len(files) == 2
        with pytest.raises(CheckpointSinkError, match="could not write"):
            CheckpointDirectory(tmp_path).write(first)  # its file exists: never reopened
        assert cp.verify_audit(checkpoints=tmp_path).checkpoint_at is not None


def test_a_webhook_receives_checkpoints_and_a_failing_one_raises(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        sid = standard_session(cp)
        with webhook_server() as hook:
            cp.audit_checkpoint(hook.url)
        received = [Checkpoint.from_json_data(body) for body in hook.bodies]
        assert [c.sessions for c in received] == [1]
        assert cp.verify_audit(checkpoints=received).ok
        with webhook_server(status=500) as down, pytest.raises(CheckpointSinkError):
            cp.audit_checkpoint(down.url)
        Attacker(cp).replace_chain(sid, Attacker(cp).rows(sid)[:4])
        assert _problems(cp, checkpoints=received) == [(sid, "behind_checkpoint")]


def test_the_newest_checkpoint_that_verifies_is_the_reference(
    database: TestDatabase, tmp_path: Path
) -> None:
    sink = tmp_path / "checkpoints.jsonl"
    signer, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        sid = standard_session(cp)
        cp.audit_checkpoint(sink, signing_key=signer)
        cp.govern(sid, "work")
        cp.audit_checkpoint(sink, signing_key=stranger)  # a key the verifier does not trust
        with sink.open("a") as file:
            file.write('{"format": "something else"}\n')
        report = cp.verify_audit(checkpoints=sink, checkpoint_keys=[signer.public_key()])
        kinds = [(p.session_id, p.problem) for p in report.problems]
        assert kinds == [(None, "bad_checkpoint"), (None, "bad_checkpoint")]
        assert "not a checkpoint" in report.problems[0].detail
        assert "whose public key this verification was not given" in report.problems[1].detail
        # The older checkpoint, signed by the trusted key, is still checked against.
        assert report.checkpoint_at is not None
        with pytest.raises(ConfigurationError, match="no checkpoints at"):
            cp.verify_audit(checkpoints=tmp_path / "missing.jsonl")
        empty = tmp_path / "empty.jsonl"
        empty.touch()
        assert _problems(cp, checkpoints=empty) == [(None, "bad_checkpoint")]


def test_a_checkpoint_without_a_key_in_the_chain_still_pins_what_it_saw(
    database: TestDatabase, tmp_path: Path
) -> None:
    """Ed25519 checkpoints over an unkeyed chain: what they cover holds, what came after
    is protected from accidental damage only, and the assurance says so."""
    sink, signer = tmp_path / "checkpoints.jsonl", Ed25519PrivateKey.generate()
    with ControlPlane.open(database.url_string) as cp:
        sid = standard_session(cp)
        cp.audit_checkpoint(sink, signing_key=signer)
        trusted = [signer.public_key()]
        report = cp.verify_audit(checkpoints=sink, checkpoint_keys=trusted)
        assert report.ok
        assert "unkeyed hash chain checked against the signed checkpoint" in report.assurance
        rows = Attacker(cp).rows(sid)
        rows[5] = {**rows[5], "reason": "rewritten"}
        Attacker(cp).replace_chain(sid, rows, unkeyed)
        assert _problems(cp, sink, trusted) == [(sid, "differs_from_checkpoint")]


def test_acp_audit_checkpoint_verify_and_keygen(database: TestDatabase, tmp_path: Path) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        sid = standard_session(cp)
    code, output = _acp("audit", "keygen")
    assert code == 0
    assert len(output.strip()) >= 32
    private = tmp_path / "checkpoint.pem"
    code, output = _acp("audit", "keygen", "--ed25519", str(private))
    assert code == 0, output
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    sink = tmp_path / "checkpoints.jsonl"
    code, output = _acp(
        "audit", "checkpoint", "--sink", str(sink), "--signing-key", str(private), *url
    )
    assert code == 0, output
    assert "1 sessions, 8 events" in output
    check = ["--checkpoints", str(sink), "--checkpoint-key", f"{private}.pub", *url]
    code, output = _acp("audit", "verify", *check)
    assert (code, "audit trail intact" in output) == (0, True)
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        Attacker(cp).replace_chain(sid, Attacker(cp).rows(sid)[:6])
    code, output = _acp("audit", "verify", "--json", *check)
    assert code == 1
    report = json.loads(output)
    assert [p["problem"] for p in report["problems"]] == ["behind_checkpoint"]
    assert "keyed chain" in report["assurance"]
    # Without a signer there is no checkpoint; a bad sink is refused before anything.
    assert _acp("audit", "checkpoint", *url, key=None)[0] == 2
    code, output = _acp("audit", "checkpoint", "--sink", str(tmp_path / "no" / "f"), *url)
    assert code == 2
    assert "does not exist" in output


def test_acp_worker_takes_a_checkpoint_each_run(database: TestDatabase, tmp_path: Path) -> None:
    url = ["--url", database.url_string]
    with ControlPlane.open(database.url_string, audit_key=KEY) as cp:
        standard_session(cp)
    sink = tmp_path / "worker.jsonl"
    code, output = _acp("worker", "--once", "--json", "--checkpoint-sink", str(sink), *url)
    assert code == 0, output
    assert json.loads(output)["checkpoint"]["sessions"] == 1
    assert len(read_checkpoints(sink)[0]) == 1
    with webhook_server(status=503) as down:
        code, output = _acp("worker", "--once", "--checkpoint-sink", down.url, *url)
    assert code == 1
    assert "audit checkpoint not stored" in output
    bad = ["worker", "--once", "--checkpoint-sink", str(tmp_path / "no" / "f"), *url]
    assert _acp(*bad)[0] == 2
