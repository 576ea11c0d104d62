"""Keyed links, counters in the chain, prune anchors and checkpoints, without a database."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_control_plane import ConfigurationError
from agent_control_plane.rules.anchors import PruneAnchor, marker_problems
from agent_control_plane.rules.audit import (
    GENESIS_HASH,
    Anchor,
    EventContent,
    StoredEvent,
    event_hash,
    verify_chain,
)
from agent_control_plane.rules.audit_keys import NO_KEYS, AuditKey, Keyring
from agent_control_plane.rules.checkpoints import Checkpoint, Head, head_problems, reference
from agent_control_plane.rules.signatures import Signer, public_keys_by_id

SESSION = uuid.uuid4()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = AuditKey.of("unit tests' audit key: 32 bytes or more")
OTHER = AuditKey.of("another audit key, 32 bytes or longer")
KEYS = Keyring.of(KEY)


def chain(count: int, key: AuditKey | None = KEY) -> list[StoredEvent]:
    """Decisions charging 0.5 each, their counters and links as ACP writes them."""
    events, previous = [], GENESIS_HASH
    for seq in range(1, count + 1):
        content = EventContent(
            SESSION,
            seq,
            "decision",
            "act",
            "allowed",
            "r",
            Decimal("0.5"),
            {"charged": True},
            NOW,
            Decimal("0.5") * seq,
            seq,
            None if key is None else key.id,
        )
        link = event_hash(previous, content, key)
        events.append(StoredEvent(content, previous, link))
        previous = link
    return events


def problems(
    events: list[StoredEvent],
    keys: Keyring = NO_KEYS,
    unkeyed_through: int | None = None,
    counters: tuple[Decimal, int] | None = None,
) -> list[tuple[int, str]]:
    found = verify_chain(
        SESSION,
        events,
        len(events),
        events[-1].hash,
        keys=keys,
        unkeyed_through=unkeyed_through,
        counters=counters,
    )
    return [(p.seq, p.problem) for p in found]


def relinked(
    events: list[StoredEvent], index: int, content: EventContent, key: AuditKey
) -> list[StoredEvent]:
    """``events`` with ``content`` at ``index`` and every link from there recomputed."""
    events = list(events)
    previous = events[index].prev_hash
    for at in range(index, len(events)):
        body = content if at == index else events[at].content
        events[at] = StoredEvent(body, previous, event_hash(previous, body, key))
        previous = events[at].hash
    return events


def test_a_keyed_chain_verifies_only_with_its_key() -> None:
    events = chain(4)
    assert problems(events, keys=KEYS) == []
    assert problems(events) == [(1, "unknown_key")]  # once per session, not per event
    assert problems(events, keys=Keyring.of(OTHER)) == [(1, "unknown_key")]
    assert problems(events, keys=Keyring.of(OTHER, [KEY])) == []


def test_a_link_forged_without_the_key_is_named() -> None:
    events = chain(4)
    forged = dataclasses.replace(events[2].content, outcome="denied")
    wrong = AuditKey(KEY.id, b"x" * 32)
    events[2] = StoredEvent(
        forged, events[2].prev_hash, event_hash(events[2].prev_hash, forged, wrong)
    )
    assert problems(events, keys=KEYS)[0] == (3, "edited")


def test_unkeyed_links_are_named_when_keys_are_required() -> None:
    events = chain(4, key=None)
    assert problems(events, keys=KEYS) == []  # unkeyed events accepted: no requirement
    assert problems(events, keys=KEYS, unkeyed_through=0) == [(1, "unkeyed")]
    assert problems(events, keys=KEYS, unkeyed_through=4) == []


def test_counters_must_follow_from_each_event_and_match_the_session() -> None:
    events = chain(4)
    assert problems(events, keys=KEYS, counters=(Decimal(2), 4)) == []
    assert problems(events, keys=KEYS, counters=(Decimal(0), 0)) == [(4, "counters")]
    inflated = dataclasses.replace(events[1].content, cost_used=Decimal(9))
    events[1] = StoredEvent(
        inflated, events[1].prev_hash, event_hash(events[1].prev_hash, inflated, KEY)
    )
    events[2] = StoredEvent(
        events[2].content, events[1].hash, event_hash(events[1].hash, events[2].content, KEY)
    )
    events[3] = StoredEvent(
        events[3].content, events[2].hash, event_hash(events[2].hash, events[3].content, KEY)
    )
    assert problems(events, keys=KEYS) == [(2, "counters"), (3, "counters")]


def test_a_prune_marker_needs_an_anchor_signed_with_a_known_key() -> None:
    marker = Anchor(3, "a" * 64)
    signed = PruneAnchor.signed(SESSION, Anchor(3, "a" * 64, (Decimal(1), 3)), NOW, KEY)
    unsigned = PruneAnchor.signed(SESSION, marker, NOW, None)

    def kinds(anchor: PruneAnchor | None, keys: Keyring = KEYS, vouched: bool = False) -> list[str]:
        return [p.problem for p in marker_problems(SESSION, marker, anchor, keys, vouched=vouched)]

    assert kinds(signed) == []
    assert kinds(None) == ["unbacked_prune"]
    assert kinds(dataclasses.replace(signed, seq=2)) == ["unbacked_prune"]
    assert kinds(dataclasses.replace(signed, cost_used=Decimal(0))) == ["unbacked_prune"]
    assert kinds(unsigned) == ["unbacked_prune"]
    assert kinds(unsigned, vouched=True) == []
    assert kinds(unsigned, keys=Keyring()) == []
    assert kinds(signed, keys=Keyring.of(OTHER)) == ["unknown_key"]
    assert marker_problems(SESSION, None, None, KEYS) == []


def test_checkpoints_round_trip_and_verify_by_signature() -> None:
    heads = [Head(uuid.uuid4(), 7, "b" * 64, 2), Head(uuid.uuid4(), 3, "c" * 64, 0)]
    signer = Ed25519PrivateKey.generate()
    checkpoint = Checkpoint.signed(NOW, 41, heads, Signer(signer))
    assert (checkpoint.sessions, checkpoint.events) == (2, 8)
    again = Checkpoint.from_json_data(checkpoint.to_json_data())
    assert again == checkpoint
    trusted = public_keys_by_id([signer.public_key()])
    assert reference([again], Keyring(), trusted) == (again, [])
    tampered = dataclasses.replace(again, max_event_id=40)
    found, bad = reference([tampered], Keyring(), trusted)
    assert found is None
    assert [p.problem for p in bad] == ["bad_checkpoint"]
    hmac_signed = Checkpoint.signed(NOW, 41, heads, Signer(KEY))
    assert reference([hmac_signed], KEYS, {})[0] == hmac_signed
    broken: object
    for broken in ({}, {**checkpoint.to_json_data(), "taken_at": "yesterday"}, []):
        with pytest.raises(ValueError, match="not an ACP audit checkpoint"):
            Checkpoint.from_json_data(broken)
    with pytest.raises(ConfigurationError, match="Ed25519"):
        public_keys_by_id(["not a key"])


def test_a_head_behind_or_unlike_its_checkpoint_is_named() -> None:
    events = chain(5)
    head = Head(SESSION, 4, events[3].hash, 0)
    checkpoint = Checkpoint.signed(NOW, 9, [head], Signer(KEY))

    def kinds(
        current: int, at_head: StoredEvent | None, marker: Anchor | None = None
    ) -> tuple[list[str], int]:
        found, vouched = head_problems(checkpoint, head, current, at_head, marker)
        return [p.problem for p in found], vouched

    assert kinds(5, events[3]) == ([], 4)
    assert kinds(3, None) == (["behind_checkpoint"], 0)
    assert kinds(5, events[4]) == (["differs_from_checkpoint"], 0)
    assert kinds(5, None, Anchor(4, "d" * 64)) == (["differs_from_checkpoint"], 0)
    assert kinds(5, None, Anchor(4, events[3].hash)) == ([], 0)
