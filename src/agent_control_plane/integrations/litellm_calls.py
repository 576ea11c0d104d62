"""What a LiteLLM call asks for and what it used, for each kind of call ACP governs.

Pure functions over LiteLLM's request keyword arguments and response objects (litellm
1.110): which call types spend tokens ACP can price, the worst case a request can use, and
the usage a response reports.
"""

from __future__ import annotations

import json
from typing import Any

from litellm import token_counter

from agent_control_plane.rules.tokens import TokenUsage

# Calls whose tokens ACP holds, refuses and settles, by LiteLLM's call type.
GOVERNED = frozenset(
    {
        "completion",
        "acompletion",
        "text_completion",
        "atext_completion",
        "responses",
        "aresponses",
        "embedding",
        "aembedding",
    }
)
SYNC_GOVERNED = frozenset({"completion", "text_completion", "responses", "embedding"})
# Calls that spend on a provider in a unit ACP's token budgets cannot price (images,
# audio, video, reranking, provider-native message APIs): refused, never passed silently.
UNGOVERNABLE = frozenset(
    {
        "image_generation",
        "aimage_generation",
        "image_edit",
        "aimage_edit",
        "transcription",
        "atranscription",
        "speech",
        "aspeech",
        "rerank",
        "arerank",
        "anthropic_messages",
        "aanthropic_messages",
        "generate_content",
        "agenerate_content",
        "generate_content_stream",
        "agenerate_content_stream",
        "ocr",
        "aocr",
        "search",
        "asearch",
        "create_video",
        "acreate_video",
        "video_generation",
        "avideo_generation",
        "video_remix",
        "avideo_remix",
        "video_edit",
        "avideo_edit",
        "video_extension",
        "avideo_extension",
        "_arealtime",
        "_aresponses_websocket",
    }
)


def call_type(value: object) -> str:
    """LiteLLM's call type as a plain string (it passes an enum, a string or None)."""
    return str(getattr(value, "value", value))


def is_embedding(kind: str) -> bool:
    return kind in ("embedding", "aembedding")


def input_tokens(kind: str, model: str, request: dict[str, Any]) -> int:
    """The prompt tokens of ``request``, counted with LiteLLM's tokenizer for ``model``."""
    messages = request.get("messages")
    if messages:
        return int(token_counter(model=model, messages=messages))
    if kind in ("responses", "aresponses"):
        parts = [request.get("instructions"), request.get("input")]
    elif is_embedding(kind):
        parts = [request.get("input")]
    else:
        parts = [request.get("prompt")]
    return sum(_text_tokens(model, part) for part in parts)


def _text_tokens(model: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return int(token_counter(model=model, text=value)) if value else 0
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return len(value)  # already tokens
    if isinstance(value, list) and all(isinstance(item, str | list) for item in value):
        return sum(_text_tokens(model, item) for item in value)
    # Structured input (Responses API items): its JSON text holds every token it sends.
    return int(token_counter(model=model, text=json.dumps(value, default=str)))


def max_output_tokens(kind: str, request: dict[str, Any], default: int) -> int:
    """The most output tokens ``request`` allows (``default`` when it sets no limit)."""
    if is_embedding(kind):
        return 0
    optional = request.get("optional_params") or {}
    for name in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
        value = request.get(name) or optional.get(name)
        if value:
            return int(value)
    return default


def usage(response: Any) -> TokenUsage | None:
    """The usage a response reports: chat, text and embedding responses name it
    ``prompt_tokens``/``completion_tokens``, Responses API responses
    ``input_tokens``/``output_tokens``. None when the response reports none."""
    reported = getattr(response, "usage", None)
    if reported is None:
        return None
    if isinstance(reported, dict):
        reported = _Attributes(reported)
    if getattr(reported, "input_tokens", None) is not None:
        prompt = int(reported.input_tokens or 0)
        output = int(getattr(reported, "output_tokens", 0) or 0)
        details = getattr(reported, "input_tokens_details", None)
    else:
        prompt = int(getattr(reported, "prompt_tokens", 0) or 0)
        output = int(getattr(reported, "completion_tokens", 0) or 0)
        details = getattr(reported, "prompt_tokens_details", None)
    if isinstance(details, dict):
        details = _Attributes(details)
    cached = int(getattr(details, "cached_tokens", 0) or 0)
    return TokenUsage(prompt, output, min(cached, prompt))


class _Attributes:
    """A dict read as attributes (some providers report usage as a plain dict)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values.get(name)
