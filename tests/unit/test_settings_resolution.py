"""One rule for where ACP's tables are (config.resolve_location), used by ControlPlane.open
and every ``acp`` command: the argument, else its ACP_* setting, else the default."""

from __future__ import annotations

import pytest

from agent_control_plane.config import DEFAULT_DATABASE_URL, resolve_location
from agent_control_plane.errors import ConfigurationError


def test_an_argument_beats_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACP_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("ACP_SCHEMA", "env_schema")
    monkeypatch.setenv("ACP_TABLE_PREFIX", "env_")
    location = resolve_location("sqlite:///given.db", "given_schema", "given_")
    assert (location.url, location.schema, location.table_prefix) == (
        "sqlite:///given.db",
        "given_schema",
        "given_",
    )


def test_a_setting_beats_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACP_DATABASE_URL", "ACP_SCHEMA", "ACP_TABLE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    bare = resolve_location(None, None, None)
    assert (bare.url, bare.schema, bare.table_prefix) == (DEFAULT_DATABASE_URL, None, None)
    monkeypatch.setenv("ACP_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("ACP_TABLE_PREFIX", "env_")
    configured = resolve_location(None, None, None)
    assert (configured.url, configured.table_prefix) == ("sqlite:///from-env.db", "env_")


def test_an_empty_url_is_refused_wherever_it_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="url is empty"):
        resolve_location("  ", None, None)
    monkeypatch.setenv("ACP_DATABASE_URL", "")
    with pytest.raises(ConfigurationError, match="ACP_DATABASE_URL is set but empty"):
        resolve_location(None, None, None)
    assert resolve_location(None, None, None, with_url=False).url is None
