"""The statements ACP sends: through SQLAlchemy, or straight to the driver (Prepared)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from agent_control_plane import ControlPlane
from agent_control_plane.store.prepared import Prepared


def statements_sent(cp: ControlPlane, call: Callable[[], object]) -> list[str]:
    """The SQL of every statement ``call`` sends, in order."""
    seen: list[str] = []
    direct = Prepared._run

    def counted(self: Prepared, *args: Any, **kwargs: Any) -> Any:
        seen.append(self.sql)
        return direct(self, *args, **kwargs)

    def on_execute(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(cp.engine, "before_cursor_execute", on_execute)
    Prepared._run = counted  # type: ignore[method-assign]
    try:
        call()
    finally:
        Prepared._run = direct  # type: ignore[method-assign]
        event.remove(cp.engine, "before_cursor_execute", on_execute)
    return seen
