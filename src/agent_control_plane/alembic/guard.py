"""The installed alembic plugin that hides ACP's objects from every autogenerate run.

Alembic loads this module through the ``alembic.plugins`` entry point while it is
itself being imported, so it imports nothing from alembic at module level and must
never raise: a broken guard would break the host's alembic.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("alembic.autogenerate.agent_control_plane")

DISABLE_VARIABLE = "ACP_ALEMBIC_GUARD"
_OFF = frozenset({"0", "false", "no", "off"})
_STATE_KEY = "_acp_guard"


def enabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "1").strip().lower() not in _OFF


class _Guard:
    def __init__(self, ownership: Any) -> None:
        from agent_control_plane.alembic.filters import name_filter, object_filter

        self.kept_out: set[str] = set()
        object_check = object_filter(ownership)
        name_check = name_filter(ownership)

        def include_object(
            obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
        ) -> bool:
            if object_check(obj, name, type_, reflected, compare_to):
                return True
            if type_ == "table":
                self.kept_out.add(_qualified(getattr(obj, "schema", None), name))
            return False

        def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
            if name_check(name, type_, parent_names):
                return True
            if type_ in ("schema", "table"):
                schema = name if type_ == "schema" else parent_names.get("schema_name")
                self.kept_out.add(
                    f"schema {name}" if type_ == "schema" else _qualified(schema, name)
                )
            return False

        self.include_object = include_object
        self.include_name = include_name


def _qualified(schema: str | None, name: str | None) -> str:
    return f"{schema}.{name}" if schema else str(name)


def _before_autogenerate(autogen_context: Any, upgrade_ops: Any) -> None:
    if not enabled() or autogen_context.connection is None:
        return
    from agent_control_plane.alembic.layouts import configured_layouts, detect_layouts
    from agent_control_plane.schema.ownership import Ownership

    try:
        detected = detect_layouts(autogen_context.connection)
    except Exception as exc:  # never break the host's autogenerate
        log.warning("agent-control-plane guard could not inspect the database: %s", exc)
        detected = set()
    guard = _Guard(Ownership.of(configured_layouts(extra=detected)))
    # Ours run first; the host's own filters still decide about everything else.
    autogen_context._object_filters.insert(0, guard.include_object)
    autogen_context._name_filters.insert(0, guard.include_name)
    autogen_context.opts[_STATE_KEY] = guard


def _after_autogenerate(autogen_context: Any, upgrade_ops: Any) -> None:
    guard = autogen_context.opts.pop(_STATE_KEY, None)
    if guard is None:
        return
    if guard.kept_out:
        log.info(
            "agent-control-plane guard kept %d ACP objects out of autogenerate: %s "
            "(set %s=0 to turn the guard off)",
            len(guard.kept_out),
            ", ".join(sorted(guard.kept_out)),
            DISABLE_VARIABLE,
        )


def setup(plugin: Any) -> None:
    """Called by alembic with this plugin's :class:`alembic.runtime.plugins.Plugin`."""
    from alembic.util import DispatchPriority

    plugin.add_autogenerate_comparator(
        _before_autogenerate, "autogenerate", priority=DispatchPriority.FIRST
    )
    plugin.add_autogenerate_comparator(
        _after_autogenerate, "autogenerate", priority=DispatchPriority.LAST
    )
