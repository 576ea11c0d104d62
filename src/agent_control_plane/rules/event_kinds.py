"""Whose event kinds are whose: ACP records its own; callers write only ``app.*`` (no I/O).

The audit trail is evidence. A row of kind ``approval.approved`` must mean that a person
approved, so no caller (SDK ``emit``, the gateway, the MCP proxy's clients) may write one:
callers have the ``app.`` namespace to themselves, and every other kind belongs to ACP.
An allow-list rather than a list of ACP's kinds, so a kind ACP adds later is never open to
callers in the meantime.
"""

from __future__ import annotations

import re
from typing import Any

from agent_control_plane.errors import InvalidInputError

APP_NAMESPACE = "app."
KIND_LENGTH = 64
_APP_KIND_RE = re.compile(r"app\.[a-z0-9][a-z0-9_.:-]*")

# Every kind ACP records itself (documented; a test drives each one and checks this list).
ACP_KINDS = frozenset(
    {
        "decision",
        "outcome",
        "session.opened",
        "session.paused",
        "session.resumed",
        "session.completed",
        "session.killed",
        "approval.approved",
        "approval.denied",
        "approval.expired",
        "approval.escalated",
        "delegation.created",
        "delegation.denied",
        "mcp.refused",
    }
)


def app_kind(value: Any) -> str:
    """``value`` if it is an application's event kind (``app.`` and then lower-case letters,
    digits and ``_ . : -``, at most 64 characters in all); InvalidInputError otherwise."""
    if isinstance(value, str) and len(value) <= KIND_LENGTH and _APP_KIND_RE.fullmatch(value):
        return value
    if isinstance(value, str) and value in ACP_KINDS:
        problem = f"{value!r} is recorded by ACP only"
    elif isinstance(value, str) and len(value) <= KIND_LENGTH:
        problem = f"{value!r} is not an application's kind"
    else:
        problem = "must be a string of at most 64 characters"
    raise InvalidInputError(
        "kind",
        f"{problem}: your events take kinds in the app. namespace, 'app.' then lower-case "
        "letters, digits and _ . : - (e.g. 'app.note')",
    )


def acp_kind(value: str) -> str:
    """``value`` if ACP records events of this kind; for ACP's own writes only."""
    if value not in ACP_KINDS:
        raise InvalidInputError("kind", f"{value!r} is not a kind ACP records")
    return value
