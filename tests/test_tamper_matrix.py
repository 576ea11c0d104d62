"""The tamper matrix, on SQLite, PostgreSQL and MariaDB: for each configuration (no key;
an audit key; a key and signed checkpoints kept outside the database), exactly which
attacks by someone who can write the database are detected."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_control_plane import ControlPlane
from tests.databases import TestDatabase
from tests.tamper import (
    AUDIT_KEY,
    CONFIGURATIONS,
    EXPECTED,
    KEY_AND_CHECKPOINTS,
    NO_KEY,
    Attacker,
    render_table,
    standard_session,
    unkeyed,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "concepts" / "audit.md"
README = ROOT / "README.md"
START, END = "<!-- tamper-matrix:start -->", "<!-- tamper-matrix:end -->"


@pytest.fixture(params=CONFIGURATIONS)
def configuration(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_tamper_matrix(database: TestDatabase, configuration: str, tmp_path: Path) -> None:
    signing_key = Ed25519PrivateKey.generate()
    options: dict[str, Any] = {}
    if configuration == KEY_AND_CHECKPOINTS:
        options = {
            "checkpoints": tmp_path / "checkpoints.jsonl",
            "checkpoint_keys": [signing_key.public_key()],
        }
    key = None if configuration == NO_KEY else AUDIT_KEY
    with ControlPlane.open(database.url_string, audit_key=key) as cp:
        victims = {
            attack.name: [standard_session(cp) for _ in range(attack.victims)]
            for attack in EXPECTED
        }
        bystander = standard_session(cp)
        pruned = standard_session(cp)
        cp.complete_session(pruned)
        assert cp.run_maintenance(event_retention=timedelta(microseconds=1)).sessions_pruned == 1
        if options:
            cp.audit_checkpoint(options["checkpoints"], signing_key=signing_key)
        later = standard_session(cp)  # after the checkpoint: only the key covers it
        clean = cp.verify_audit(**options)
        assert clean.ok, clean.problems

        attacker = Attacker(cp)
        for attack in EXPECTED:
            attack.run(attacker, victims[attack.name], unkeyed)
        report = cp.verify_audit(**options)

    found: dict[uuid.UUID | None, list[str]] = defaultdict(list)
    for problem in report.problems:
        found[problem.session_id].append(f"{problem.seq} {problem.problem}: {problem.detail}")
    detected = {
        attack.name for attack in EXPECTED if any(found.get(v) for v in victims[attack.name])
    }
    expected = {attack.name for attack in EXPECTED if configuration in attack.detected_by}
    assert detected == expected, dict(found)
    # Nothing else is accused: not the sessions left alone, nor the checkpoints.
    assert not {bystander, pruned, later, None} & set(found), dict(found)


def test_with_a_key_and_checkpoints_every_attack_is_detected() -> None:
    assert all(KEY_AND_CHECKPOINTS in attack.detected_by for attack in EXPECTED)


@pytest.mark.parametrize("page", [DOCS, README], ids=["audit page", "README"])
def test_the_docs_show_the_matrix_the_tests_prove(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    shown = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == render_table(), f"replace the table in {page} with:\n{render_table()}"
