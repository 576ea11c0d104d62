"""Audit keys: keyed links and signed prune anchors, rotation, adoption on an existing trail,
and what a verification without the key says about itself."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from agent_control_plane import ConfigurationError, ControlPlane
from agent_control_plane.rules.audit_keys import key_id_of
from tests.databases import TestDatabase
from tests.tamper import Attacker, standard_session, unkeyed

FIRST = "first audit key: thirty-two bytes or more"
SECOND = "second audit key: thirty-two bytes or more"


def _problems(
    cp: ControlPlane, sid: uuid.UUID | None = None, checkpoints: Path | None = None
) -> set[str]:
    return {p.problem for p in cp.verify_audit(sid, checkpoints=checkpoints).problems}


def test_links_are_keyed_and_the_key_is_never_stored(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        sid = standard_session(cp)
        events = cp.events(sid)
        assert {e.key_id for e in events} == {key_id_of(FIRST.encode())}
        report = cp.verify_audit()
        assert report.ok
        assert "keyed chain" in report.assurance
        with cp.engine.connect() as connection:
            rows = connection.execute(select(cp.tables.events)).all()
        assert FIRST not in repr(rows)
    # Without the key nothing can be checked, and the report says why.
    with ControlPlane.open(database.url_string) as cp:
        report = cp.verify_audit(sid)
    assert {p.problem for p in report.problems} == {"unknown_key"}
    assert "accidental damage only" in report.assurance


def test_a_rotated_trail_verifies_with_old_and_new_keys_and_tampering_still_shows(
    database: TestDatabase,
) -> None:
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        sid = standard_session(cp)
    with ControlPlane.open(database.url_string, audit_key=SECOND, audit_keys=[FIRST]) as cp:
        cp.govern(sid, "work", cost="0.5")
        keys = {e.key_id for e in cp.events(sid)}
        assert keys == {key_id_of(FIRST.encode()), key_id_of(SECOND.encode())}
        assert cp.verify_audit().ok
        e = cp.tables.events.c
        with cp.engine.begin() as connection:
            connection.execute(
                update(cp.tables.events).where(e.session_id == sid, e.seq == 2).values(cost=0)
            )
        assert _problems(cp, sid) == {"edited"}
    # The new key alone cannot vouch for what the old one linked.
    with ControlPlane.open(database.url_string, audit_key=SECOND) as cp:
        assert "unknown_key" in _problems(cp, sid)


def test_pruned_trails_verify_across_a_rotation_and_forged_anchors_do_not(
    database: TestDatabase,
) -> None:
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        pruned, forged = standard_session(cp), standard_session(cp)
        for sid in (pruned, forged):
            cp.complete_session(sid)
        report = cp.run_maintenance(event_retention=timedelta(microseconds=1))
        assert report.sessions_pruned == 2
    with ControlPlane.open(database.url_string, audit_key=SECOND, audit_keys=[FIRST]) as cp:
        assert cp.verify_audit().ok
        anchors = cp.tables.audit_anchors
        with cp.engine.begin() as connection:
            signed = connection.execute(
                select(anchors.c.signature).where(anchors.c.session_id == forged)
            ).scalar_one()
            assert signed is not None
            connection.execute(
                update(anchors).where(anchors.c.session_id == forged).values(cost_used=0)
            )
        assert _problems(cp, pruned) == set()
        assert _problems(cp, forged) == {"unbacked_prune"}


def test_adopting_a_key_flags_unkeyed_history_unless_a_checkpoint_vouches_for_it(
    database: TestDatabase, tmp_path: Path
) -> None:
    with ControlPlane.open(database.url_string) as cp:
        old = standard_session(cp)
        ended = standard_session(cp)
        cp.complete_session(ended)
        cp.run_maintenance(event_retention=timedelta(microseconds=1))
    checkpoints = tmp_path / "adoption.jsonl"
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        cp.govern(old, "work", cost="0.1")  # keyed, after eight unkeyed events
        assert _problems(cp) == {"unkeyed", "unbacked_prune"}
        cp.audit_checkpoint(checkpoints)
        cp.govern(old, "work", cost="0.1")
        assert cp.verify_audit(checkpoints=checkpoints).ok
        # An unkeyed event the checkpoint did not see is still flagged.
        Attacker(cp).replace_chain(old, Attacker(cp).rows(old), unkeyed)
        assert "unkeyed" in _problems(cp, old, checkpoints=checkpoints)


def test_an_empty_or_short_key_and_the_environment(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        ControlPlane.open(database.url_string, audit_key="short")
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        ControlPlane.open(database.url_string, audit_key=FIRST, audit_keys="short")
    monkeypatch.setenv("ACP_AUDIT_KEY", SECOND)
    monkeypatch.setenv("ACP_AUDIT_KEYS", f"{FIRST}, ")
    with ControlPlane.open(database.url_string) as cp:
        sid = standard_session(cp)
        assert {e.key_id for e in cp.events(sid)} == {key_id_of(SECOND.encode())}
        assert cp.verify_audit().ok
    monkeypatch.setenv("ACP_AUDIT_KEY", "")  # empty: no key
    with ControlPlane.open(database.url_string) as cp:
        plain = cp.open_session(agent_id="a", policy=_POLICY, max_cost=1, max_actions=1)
        assert cp.events(plain.id)[0].key_id is None


_POLICY = {"name": "plain", "tiers": {"unrestricted": ["work"]}}


def test_counters_in_the_chain_survive_every_path_that_charges(database: TestDatabase) -> None:
    """Placed and unplaced charges, approvals, settles, refusals and kills all record the
    counters the session row holds; a reset counter is named at the session's head."""
    policy = {"name": "charges", "tiers": {"unrestricted": ["work"], "always_approve": ["pay"]}}
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        sid = cp.open_session(agent_id="a", policy=policy, max_cost=5, max_actions=6).id
        first = cp.govern(sid, "work", cost="1")
        cp._runtime.memory.forget_all()  # the next charge reads the head afresh
        cp.govern(sid, "work", cost="1.5")
        asked = cp.govern(sid, "pay", args={"n": 1}, cost="2")
        assert asked.ticket_id is not None
        cp.approve(asked.ticket_id, "alice")
        assert cp.govern(sid, "pay", args={"n": 1}, cost="2").allowed
        assert not cp.govern(sid, "work", cost="4").allowed  # over budget
        cp.record_outcome(first, "succeeded", actual_cost="0.25")
        cp.kill_session(sid)
        session = cp.get_session(sid)
        last = cp.events(sid)[-1]
        assert (last.cost_used, last.actions_used) == (session.cost_used, session.actions_used)
        assert (session.cost_used, session.actions_used) == (Decimal("3.75"), 3)
        assert cp.verify_audit().ok
        s = cp.tables.sessions.c
        with cp.engine.begin() as connection:
            connection.execute(update(cp.tables.sessions).where(s.id == sid).values(actions_used=0))
        assert [(p.seq, p.problem) for p in cp.verify_audit(sid).problems] == [
            (last.seq, "counters")
        ]


def test_a_checkpoint_needs_a_signer(database: TestDatabase) -> None:
    with ControlPlane.open(database.url_string) as cp:
        standard_session(cp)
        with pytest.raises(ConfigurationError, match="must be signed"):
            cp.audit_checkpoint()
    with ControlPlane.open(database.url_string, audit_key=FIRST) as cp:
        taken = cp.audit_checkpoint()
    assert (taken.sessions, taken.events) == (1, 8)
    assert (taken.signature.algorithm, taken.signature.key_id) == (
        "hmac-sha256",
        key_id_of(FIRST.encode()),
    )
