"""JSON documents (args, metadata, payloads) are checked before anything is written."""

from __future__ import annotations

import pytest

from agent_control_plane.errors import InvalidInputError
from agent_control_plane.rules.canonical import json_document


@pytest.mark.parametrize(
    "value", [{"a": "x\x00y"}, {"k\x00": 1}, {"list": [1, ["\x00"]]}, {"deep": {"er": "\x00"}}]
)
def test_a_nul_character_is_refused(value: object) -> None:
    with pytest.raises(InvalidInputError, match="args: must not contain NUL"):
        json_document(value, field="args")


def test_an_escaped_backslash_u_is_only_text() -> None:
    assert json_document({"a": "\\u0000"}, field="args") == {"a": "\\u0000"}
