"""Policy and price files: read from disk, parsed, then handed to the pure rules.

Reading a file is I/O, so it lives here and not in ``rules/``: the rules take the
parsed data. Errors point at the file (and, for a policy, at file:line: field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agent_control_plane.errors import InvalidInputError, PolicyError
from agent_control_plane.rules.policy import PolicyDocument, parse_policy
from agent_control_plane.rules.tokens import PriceTable


def _yaml_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines[path or "(document)"] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = f"{path}.{key_node.value}" if path else str(key_node.value)
            lines[child] = key_node.start_mark.line + 1
            _yaml_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _yaml_lines(item, f"{path}.{index}" if path else str(index), lines)


def load_policy_file(path: str | Path) -> PolicyDocument:
    """Load a policy from a .yaml/.yml or .json file; errors point at file:line: field."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {file}: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL or a lone surrogate in the path; not UTF-8 inside
        raise PolicyError(f"cannot read policy file {str(file)!r}: {exc}") from exc
    lines: dict[str, int] = {}
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            if node is not None:
                _yaml_lines(node, "", lines)
            data = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PolicyError(
            f"{file}: not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {exc}"
        ) from exc
    return parse_policy(data, source=str(file), lines=lines)


def read_price_file(path: str | Path) -> Any:
    """The data of a price file (.json, else YAML), for ``PriceTable.of``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError("prices", f"cannot read price file {file}: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL or a lone surrogate in the path; not UTF-8 inside
        raise InvalidInputError("prices", f"cannot read price file {str(file)!r}: {exc}") from exc
    try:
        return json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "JSON" if str(path).endswith(".json") else "YAML"
        raise InvalidInputError("prices", f"{file}: not valid {kind}: {exc}") from exc


def price_table(
    source: PriceTable | dict[str, Any] | str | Path | None, *, fallback: str | None = None
) -> PriceTable:
    """The price table of ``source``: a PriceTable, a mapping, or a YAML/JSON file's path."""
    if isinstance(source, str | Path):
        source = read_price_file(source)
    return PriceTable.of(source, fallback=fallback)
