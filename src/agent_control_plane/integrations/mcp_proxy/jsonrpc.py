"""JSON-RPC messages as the proxy passes them: dicts, one per line on a stdio pipe.

The proxy reads a message once and writes it once; what it does not govern it passes on
as it came (a reply's id is the only thing it may change).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mcp.shared.exceptions import MCPError

logger = logging.getLogger(__name__)

Message = dict[str, Any]
# The prefix of the 2026 protocol's per-request envelope keys in ``_meta``.
ENVELOPE_PREFIX = "io.modelcontextprotocol/"
_CHUNK = 1 << 16


def encode(message: Message) -> bytes:
    """One line of the wire."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Message | None:
    """The message on ``line``; None (logged) if it is not a JSON-RPC object."""
    try:
        message = json.loads(line.decode(errors="replace"))
    except ValueError:
        logger.warning("dropped a line that is not JSON: %.200r", line)
        return None
    if not isinstance(message, dict):
        logger.warning("dropped a message that is not a JSON object: %.200r", line)
        return None
    return message


async def lines(receive: Callable[[int], Awaitable[bytes]]) -> AsyncIterator[bytes]:
    """The non-blank lines read by ``receive(max_bytes)`` (b"" at the end), in order."""
    buffer = b""
    while chunk := await receive(_CHUNK):
        *complete, buffer = (buffer + chunk).split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def result(request_id: Any, value: Message) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: Any, failure: MCPError) -> Message:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": failure.error.model_dump(mode="json", exclude_none=True),
    }


def notification(method: str, params: Message | None) -> Message:
    if params is None:
        return {"jsonrpc": "2.0", "method": method}
    return {"jsonrpc": "2.0", "method": method, "params": params}


def progress_token(params: Message | None) -> str | int | None:
    """The progress token a request carries in ``_meta``, if any."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None


def without_envelope(params: Message | None) -> Message | None:
    """``params`` less the 2026 protocol's per-request envelope in ``_meta``, which is
    between the client and the proxy (the server below speaks the handshake era)."""
    meta = params.get("_meta") if params else None
    if not isinstance(meta, dict) or not any(key.startswith(ENVELOPE_PREFIX) for key in meta):
        return params
    assert params is not None
    kept = {key: value for key, value in meta.items() if not key.startswith(ENVELOPE_PREFIX)}
    stripped = {key: value for key, value in params.items() if key != "_meta"}
    if kept:
        stripped["_meta"] = kept
    return stripped
