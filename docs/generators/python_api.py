"""The methods of ControlPlane, from their runtime signatures.

The methods are built from operations (``sync_method(sessions.open_session)``), so a
static reader sees assignments; ``inspect.signature`` sees the public signature the
facade gives each method, and its docstring.
"""

from __future__ import annotations

import inspect
import re

from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane


def render() -> str:
    """One entry per public method: its signature and docstring, and whether the async
    class has it too (it always should: a test fails otherwise)."""
    lines = []
    for name in sorted(_public(ControlPlane)):
        member = inspect.getattr_static(ControlPlane, name)
        function = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if isinstance(function, property):
            signature = ""
            doc = inspect.getdoc(function) or ""
        else:
            signature = str(inspect.signature(getattr(ControlPlane, name)))
            signature = signature.replace("(self, /, ", "(").replace("(self, ", "(")
            signature = signature.replace("(self)", "()").replace("(cls, ", "(")
            signature = re.sub(r"'([^']*)'", r"\1", signature)
            doc = inspect.getdoc(function) or ""
        twin = "" if hasattr(AsyncControlPlane, name) else " *(sync only)*"
        lines += [f"### `{name}`{twin}", ""]
        if signature:
            lines += ["```python", f"{name}{signature}", "```", ""]
        if doc:
            lines += [_plain(doc), ""]
    return "\n".join(lines)


def _public(cls: type) -> list[str]:
    return [name for name in dir(cls) if not name.startswith("_")]


def _plain(doc: str) -> str:
    """Docstrings use reST literals (``x``); Markdown wants `x`."""
    return re.sub(r"``([^`]+)``", r"`\1`", doc)
