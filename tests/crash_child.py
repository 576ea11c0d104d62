"""Run by test_crash.py in a child process: govern until the parent SIGKILLs us.

With a marker path, the child pauses right after its Nth charge UPDATE (inside the
transaction, before the event INSERT) and tells the parent where it is, so the kill
lands exactly in the middle of a governed decision.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from agent_control_plane import ControlPlane


def main(url: str, session_id: str, marker: str, pause_after: int) -> None:
    with ControlPlane.open(url, migrate="verify") as cp:
        charges = 0

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            nonlocal charges
            if statement.lstrip().upper().startswith("UPDATE") and "actions_used" in statement:
                charges += 1
                if marker and charges == pause_after:
                    Path(marker).write_text("charged, event not yet written")
                    time.sleep(120)

        event.listen(cp.engine, "after_cursor_execute", after)
        while True:
            cp.govern(session_id, "work", cost="0.001", idempotency_key=None)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
