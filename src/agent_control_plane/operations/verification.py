"""verify_audit: recompute every chain, check every prune marker and, given checkpoints,
every head they saw."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from itertools import groupby
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.checkpoint_io import keys_material, read_checkpoints
from agent_control_plane.errors import InvalidInputError, SessionNotFoundError
from agent_control_plane.models import AuditReport
from agent_control_plane.operations.traits import repeatable
from agent_control_plane.rules import validation
from agent_control_plane.rules.audit import AuditProblem, StoredEvent
from agent_control_plane.rules.checkpoints import Checkpoint, missing_session, reference
from agent_control_plane.rules.signatures import public_keys_by_id
from agent_control_plane.rules.trail import assurance, session_problems
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import events as event_store
from agent_control_plane.store import sessions as session_store
from agent_control_plane.store import trail

_VERIFY_BATCH = 200


def _reference(
    runtime: Runtime, checkpoints: Any, checkpoint_keys: Any
) -> tuple[Checkpoint | None, list[AuditProblem]]:
    """The checkpoint to verify against (read and checked before anything is read from
    the database), and the problems of the checkpoints themselves."""
    if checkpoints is None:
        return None, []
    public_keys = public_keys_by_id(keys_material(checkpoint_keys))
    found, unreadable = read_checkpoints(checkpoints)
    checkpoint, problems = reference(found, runtime.keys, public_keys)
    unreadable_problems = [
        AuditProblem(None, 0, "bad_checkpoint", f"not a checkpoint: {entry}")
        for entry in unreadable
    ]
    return checkpoint, unreadable_problems + problems


@repeatable
def verify_audit(
    connection: Connection,
    runtime: Runtime,
    session_id: uuid.UUID | str | None = None,
    progress: Callable[[int, int], object] | None = None,
    *,
    checkpoints: Any = None,
    checkpoint_keys: Any = None,
) -> AuditReport:
    """Recompute every chain (or one session's) and name each edited, missing, inserted,
    reordered or forged event, each counter that does not follow from its events and
    each prune marker no prune anchor backs.

    With the audit keys ACP was opened with, every link must be keyed with one of them
    (or vouched for by a checkpoint). ``checkpoints`` (a JSON-lines file or directory
    written by ``audit_checkpoint``, or Checkpoint objects): the newest whose signature
    verifies must still hold — no head behind it, none rewritten, no session gone.
    ``checkpoint_keys``: the Ed25519 public keys (objects, PEM bytes or files) that may
    sign checkpoints; HMAC-signed ones verify with the audit keys. ``report.assurance``
    says what this configuration detects, and against whom. ``progress(sessions_checked,
    sessions_total)``, if given, is called before the first batch of sessions and after
    each.
    """
    only = None if session_id is None else validation.session_id(session_id)
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress", "must be a function (sessions_checked, total)")
    checkpoint, problems = _reference(runtime, checkpoints, checkpoint_keys)
    expected = {} if checkpoint is None else {h.session_id: h for h in checkpoint.heads}
    checked_sessions = checked_events = 0
    last: uuid.UUID | None = None
    total = 0
    if progress is not None:
        if only is None:
            with connection.begin():
                total = session_store.count(connection, runtime)
        else:
            total = 1
        progress(0, total)
    while True:
        with connection.begin():
            states = trail.session_states(
                connection, runtime, after=last, only=only, limit=_VERIFY_BATCH
            )
            if not states:
                break
            rows = event_store.chain_rows(connection, runtime, [s.session_id for s in states])
            chains: dict[uuid.UUID, list[StoredEvent]] = {
                sid: [stored for _, stored in group]
                for sid, group in groupby(rows, key=lambda pair: pair[0])
            }
        for state in states:
            chain = chains.get(state.session_id, [])
            checked_events += len(chain)
            head = expected.pop(state.session_id, None)
            problems += session_problems(state, chain, runtime.keys, checkpoint, head)
        checked_sessions += len(states)
        if progress is not None:
            # Sessions opened while verifying are checked too: the total grows with them.
            total = max(total, checked_sessions)
            progress(checked_sessions, total)
        # The last id in the database's order, not Python's: MariaDB's UUID type sorts
        # its bytes differently, and max() would make the next batch repeat sessions.
        last = states[-1].session_id
        if only is not None:
            break
    if only is not None and not checked_sessions and only not in expected:
        # Not in the database, and no checkpoint saw it (then it would be a deleted session,
        # reported below): there is nothing to verify.
        raise SessionNotFoundError(f"no session {only}")
    if checkpoint is not None:
        # Every session the checkpoint saw and the database no longer has (just the one
        # asked for, when verifying one).
        gone = [head for head in expected.values() if only in (None, head.session_id)]
        problems += [missing_session(checkpoint, head) for head in gone]
    return AuditReport(
        ok=not problems,
        sessions_checked=checked_sessions,
        events_checked=checked_events,
        problems=problems,
        assurance=assurance(runtime.keys, checkpoint),
        checkpoint_at=None if checkpoint is None else checkpoint.taken_at,
    )
