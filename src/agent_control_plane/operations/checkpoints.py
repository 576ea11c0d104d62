"""audit_checkpoint: sign a statement of the whole trail and send it outside the database."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from agent_control_plane.checkpoint_io import key_material, sink_for
from agent_control_plane.rules.checkpoints import Checkpoint, Head
from agent_control_plane.rules.signatures import signer_for
from agent_control_plane.runtime import Runtime
from agent_control_plane.store import events as event_store
from agent_control_plane.store import trail

_HEADS_BATCH = 5000


def audit_checkpoint(
    connection: Connection,
    runtime: Runtime,
    sink: Any = None,
    *,
    signing_key: Any = None,
) -> Checkpoint:
    """Sign a statement of the whole trail — every session's head, the highest event id,
    the counts, the time — and store it in ``sink`` if given: a JSON-lines file (appended
    to), a directory (one new file each), an http(s) URL (POSTed as JSON) or an object
    with ``write(checkpoint)``. Keep it where the database's users cannot write:
    ``verify_audit(checkpoints=...)`` then finds any later change to what it covers.

    Signed with ``signing_key`` (an Ed25519 private key, its PEM bytes or PEM file; the
    ``signing`` extra), else with the audit key ACP was opened with. Raises
    ConfigurationError when there is neither, CheckpointSinkError when the sink failed.
    """
    signer = signer_for(key_material(signing_key), runtime.keys)
    target = None if sink is None else sink_for(sink)
    now = runtime.clock()
    with connection.begin():
        max_event_id = event_store.newest_id(connection, runtime, None) or 0
    # Each head was committed when read: the statement needs no single snapshot.
    heads: list[Head] = []
    last: uuid.UUID | None = None
    while True:
        with connection.begin():
            page = trail.heads(connection, runtime, after=last, limit=_HEADS_BATCH)
        heads += page
        if len(page) < _HEADS_BATCH:
            break
        last = page[-1].session_id
    checkpoint = Checkpoint.signed(now, max_event_id, heads, signer)
    if target is not None:
        target.write(checkpoint)
    return checkpoint
