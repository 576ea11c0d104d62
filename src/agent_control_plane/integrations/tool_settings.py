"""Settings given per tool (an action name, a cost, a risk weight or score): one rule for
every framework adapter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from agent_control_plane.errors import ConfigurationError

T = TypeVar("T")

# A value per tool name, or a callable given the tool's name and its call's arguments.
PerTool = Mapping[str, T] | Callable[[str, dict[str, Any]], T]


def per_tool(setting: PerTool[T] | None, name: str) -> PerTool[T] | None:
    """``setting`` if it is a mapping or a callable; ConfigurationError otherwise."""
    if setting is None or isinstance(setting, Mapping) or callable(setting):
        return setting
    raise ConfigurationError(
        f"{name} must be a mapping of tool name to value, or a callable "
        f"(tool name, arguments) -> value; got {type(setting).__name__}"
    )


def value_for(setting: PerTool[T] | None, tool: str, arguments: dict[str, Any], default: T) -> T:
    """The value ``setting`` gives a call of ``tool`` (``default`` when it gives none)."""
    if setting is None:
        return default
    if isinstance(setting, Mapping):
        return setting.get(tool, default)
    value = setting(tool, dict(arguments))
    return default if value is None else value
