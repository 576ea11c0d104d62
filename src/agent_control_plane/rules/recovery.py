"""Idempotency keys that name what a call wrote, for calls that had no key of their own.

A call made without a key records none (that would cost a statement on every call). If
its COMMIT fails and ACP cannot look at the database afterwards, the caller is given a
key built from the one row the call wrote, whose presence proves it committed: the
decision event (session seq and hash) or the reservation (its id). The same call
retried with that key finds the row and returns the first result, or, if the row is not
there, is decided anew under the key like any keyed call. Keys starting with ``acp:`` are
ACP's; a caller's own key never starts with it.
"""

from __future__ import annotations

import re
import uuid

PREFIX = "acp:"
_EVENT = re.compile(r"^acp:event:(\d{1,19}):([0-9a-f]{64})$")
_RESERVATION = re.compile(r"^acp:reservation:([0-9a-f-]{36})$")


def event_key(seq: int, event_hash: str) -> str:
    return f"{PREFIX}event:{seq}:{event_hash}"


def parse_event_key(key: str | None) -> tuple[int, str] | None:
    """The seq and hash a key built by :func:`event_key` names, else None."""
    found = _EVENT.match(key or "")
    return None if found is None else (int(found.group(1)), found.group(2))


def reservation_key(reservation_id: uuid.UUID) -> str:
    return f"{PREFIX}reservation:{reservation_id}"


def parse_reservation_key(key: str | None) -> uuid.UUID | None:
    found = _RESERVATION.match(key or "")
    return None if found is None else uuid.UUID(found.group(1))
