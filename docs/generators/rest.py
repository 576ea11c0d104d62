"""The REST API reference, from the gateway's own OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.gateway import create_app

_METHODS = ("get", "post", "put", "patch", "delete")


def openapi() -> dict[str, Any]:
    """The gateway's OpenAPI document (an in-memory control plane: nothing connects)."""
    with ControlPlane.open("sqlite://", migrate="off") as control_plane:
        return create_app(control_plane, dashboard=False).openapi()


def render() -> str:
    """Each endpoint grouped by its first path segment after /v1: method, path, summary,
    parameters, request body, responses; then the schemas."""
    document = openapi()
    lines = [
        f"OpenAPI {document['openapi']}, API version {document['info']['version']}. "
        "The whole document: [openapi.json](openapi.json) (also served by the gateway "
        "at `/openapi.json`).",
        "",
    ]
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        parts = path.strip("/").split("/")
        group = parts[1] if parts[0] == "v1" and len(parts) > 1 else "health"
        for method in _METHODS:
            if method in operations:
                groups.setdefault(group, []).append((method, path, operations[method]))
    for group, operations in groups.items():
        lines += [f"## {group}", ""]
        for method, path, operation in operations:
            lines += _operation(method, path, operation)
    lines += ["## Schemas", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    summary = operation.get("description") or operation.get("summary") or ""
    if summary:
        lines += [summary.strip().replace("``", "`"), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required |", "|---|---|---|---|"]
        for parameter in parameters:
            kind = _type(parameter.get("schema", {}))
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {kind} "
                f"| {'yes' if parameter.get('required') else 'no'} |"
            )
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Request body ({media}): {_type(content.get('schema', {}))}", ""]
    responses = operation.get("responses", {})
    shown = []
    for status, response in responses.items():
        content = response.get("content", {})
        kinds = ", ".join(_type(c.get("schema", {})) for c in content.values())
        shown.append(f"`{status}`" + (f" {kinds}" if kinds else ""))
    lines += ["Responses: " + "; ".join(shown) + ".", ""]
    return lines


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name} {{#schema-{name.lower()}}}", ""]
    if schema.get("description"):
        lines += [str(schema["description"]).strip().replace("``", "`"), ""]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", ()))
        lines += ["| field | type | required |", "|---|---|---|"]
        for field, definition in properties.items():
            needed = "yes" if field in required else "no"
            lines.append(f"| `{field}` | {_type(definition)} | {needed} |")
    elif "enum" in schema:
        lines.append("One of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"]) + ".")
    lines.append("")
    return lines


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(_type(option) for option in schema[key]))
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return str(kind)
