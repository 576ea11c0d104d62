"""Run by test_crash.py in a child process: govern until the parent SIGKILLs us.

With a marker path, the child pauses inside its Nth governed transaction — after the
charge UPDATE, before the event is written — and tells the parent, so the kill lands
exactly in the middle of a decision.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent_control_plane import ControlPlane
from agent_control_plane.store import events


def main(url: str, session_id: str, marker: str, pause_after: int) -> None:
    # Every event is written by events.write, whether the charge placed it or not.
    write = events.write
    decisions = 0

    def write_then_maybe_pause(*args: Any, **kwargs: Any) -> Any:
        nonlocal decisions
        decisions += 1
        if marker and decisions == pause_after:
            Path(marker).write_text("charged, event not yet written")
            time.sleep(120)
        return write(*args, **kwargs)

    events.write = write_then_maybe_pause
    with ControlPlane.open(url, migrate="verify") as cp:
        if marker:
            # The pause goes between two statements of one transaction. A one-statement
            # decision (PostgreSQL, warm) has no such moment: take the general path.
            capabilities = replace(cp._runtime.capabilities, one_statement_decisions=False)
            cp._runtime = replace(cp._runtime, capabilities=capabilities)
        while True:
            cp.govern(session_id, "work", cost="0.001")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
