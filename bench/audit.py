"""What keying the audit chain costs: one link computed with and without the key, on a
decision event as govern writes it (no database, so round-trip noise does not drown it)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from agent_control_plane import ControlPlane
from agent_control_plane.rules.audit import EventContent, event_hash
from agent_control_plane.rules.audit_keys import AuditKey
from bench.governing import BENCH_AUDIT_KEY, POLICY
from bench.timing import ops_per_second


def _decision(key: AuditKey | None) -> EventContent:
    payload: dict[str, object] = {
        "resource": None,
        "args": {},
        "weight": None,
        "score": None,
        "charged": True,
        "dry_run": False,
        "guidance": None,
        "policy_id": str(uuid.uuid4()),
        "idempotency_key": "k123",
        "ticket_id": None,
    }
    return EventContent(
        uuid.uuid4(),
        42,
        "decision",
        "work",
        "allowed",
        "tier.unrestricted:work",
        Decimal("0.000100000"),
        payload,
        datetime.now(UTC),
        Decimal("0.004200000"),
        42,
        None if key is None else key.id,
    )


def link_microseconds(seconds: float) -> tuple[float, float]:
    """Microseconds per link: (unkeyed SHA-256, keyed HMAC-SHA-256)."""
    key = AuditKey.of(BENCH_AUDIT_KEY)
    plain, keyed = _decision(None), _decision(key)
    previous = "0" * 64
    sha = ops_per_second(lambda: event_hash(previous, plain), seconds)
    hmac = ops_per_second(lambda: event_hash(previous, keyed, key), seconds)
    return 1_000_000 / sha, 1_000_000 / hmac


def checkpoint_milliseconds(url: str, sessions: int = 1000) -> tuple[float, float]:
    """Milliseconds to read and sign a checkpoint of ``sessions`` sessions: (HMAC with the
    audit key, Ed25519), best of three each; nothing is stored."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Ed25519PrivateKey.generate()
    with ControlPlane.open(url, audit_key=BENCH_AUDIT_KEY) as cp:
        for _ in range(sessions - cp.audit_checkpoint().sessions):
            cp.open_session(agent_id="bench", policy=POLICY, max_cost=1, max_actions=1)

        def best(signing_key: object) -> float:
            times = []
            for _ in range(3):
                started = time.perf_counter()
                cp.audit_checkpoint(signing_key=signing_key)
                times.append((time.perf_counter() - started) * 1000)
            return min(times)

        return best(None), best(signer)
