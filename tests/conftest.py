from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from agent_control_plane import AsyncControlPlane, ControlPlane
from tests.databases import DIALECTS, TestDatabase, fresh_database

# A test that opens ACP through one of these gets its database with ACP's tables already at
# head, copied from a template migrated once per process: migrating is the subject of other
# tests, and running every migration for each test cost seconds apiece.
_OPENED_FOR_THE_TEST = frozenset({"control_plane", "two_control_planes", "async_control_plane"})


@pytest.fixture(params=DIALECTS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A fresh database on each dialect in turn: empty, unless the test opens ACP on it
    through a fixture (then migrated to head)."""
    migrated = not _OPENED_FOR_THE_TEST.isdisjoint(request.fixturenames)
    yield from fresh_database(request.param, tmp_path, migrated=migrated)


@pytest.fixture
def control_plane(database: TestDatabase) -> Iterator[ControlPlane]:
    """ACP opened (and migrated) on a fresh database of each dialect."""
    with ControlPlane.open(database.url_string) as opened:
        yield opened


@pytest.fixture
def two_control_planes(database: TestDatabase) -> Iterator[tuple[ControlPlane, ControlPlane]]:
    """Two ControlPlanes on one fresh database: as two processes, each with its own memory
    (remembered chain heads, token budgets, policies)."""
    with (
        ControlPlane.open(database.url_string) as one,
        ControlPlane.open(database.url_string) as other,
    ):
        yield one, other


@pytest.fixture
async def async_control_plane(database: TestDatabase) -> AsyncIterator[AsyncControlPlane]:
    async with await AsyncControlPlane.open(database.async_url_string) as opened:
        yield opened


@pytest.fixture
def pg_database(tmp_path: Path) -> Iterator[TestDatabase]:
    """A fresh PostgreSQL database (for PostgreSQL-only behaviour)."""
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def mysql_database(tmp_path: Path) -> Iterator[TestDatabase]:
    """A fresh, empty MariaDB/MySQL database (for PyMySQL and asyncmy behaviour)."""
    yield from fresh_database("mysql", tmp_path)


@pytest.fixture(autouse=True)
def _clean_acp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ACP_DATABASE_URL",
        "ACP_SCHEMA",
        "ACP_TABLE_PREFIX",
        "ACP_MIGRATE",
        "ACP_IDEMPOTENCY_RETENTION",
        "ACP_WORKER_INTERVAL",
        "ACP_WORKER_ESCALATE_AFTER",
        "ACP_WORKER_WEBHOOK_URL",
        "ACP_WORKER_HEARTBEAT_TIMEOUT",
        "ACP_WORKER_ON_STALE",
        "ACP_WORKER_EVENT_RETENTION",
        "ACP_WORKER_CHECKPOINT_SINK",
        "ACP_AUDIT_KEY",
        "ACP_AUDIT_KEYS",
        "ACP_CHECKPOINT_SINK",
        "ACP_CHECKPOINT_SIGNING_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ACP_ALEMBIC_GUARD", raising=False)


@pytest.fixture(autouse=True)
def _acp_loggers_enabled() -> None:
    """A host's alembic env.py calls logging.config.fileConfig, which disables every logger
    that exists (disable_existing_loggers): it must not silence ACP in the tests after it."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("agent_control_plane") and isinstance(logger, logging.Logger):
            logger.disabled = False


@pytest.fixture(params=["sqlite", "postgresql"])
def core_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on SQLite and on PostgreSQL: for tests that run processes, where
    the third dialect adds time but no new path."""
    if request.param == "postgresql":
        database: TestDatabase = request.getfixturevalue("pg_database")
        return database.url_string
    return f"sqlite:///{tmp_path / 'acp.db'}"


# Modules that drive a third-party framework or SDK (marker ``integration``).
_INTEGRATION_MODULES = (
    "test_claude_agent_sdk",
    "test_examples",
    "test_framework_parity",
    "test_langchain",
    "test_langgraph",
    "test_litellm",
    "test_mcp_",
    "test_openai_agents",
    "test_pydantic_ai",
)


_PATH_MARKERS = frozenset({"db", "integration", "browser"})
_WORDS = frozenset({"and", "or", "not", "True", "False"})


def _path_markers(path: Path) -> set[str]:
    """The markers a test module's path gives every test in it."""
    markers = set()
    if "unit" not in path.parts:
        markers.add("db")
    if path.stem.startswith(_INTEGRATION_MODULES):
        markers.add("integration")
    if path.stem == "test_dashboard_browser":
        markers.add("browser")
    return markers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by what a test touches, so that ``pytest -m "not db"`` (tests/unit, pure
    rules) runs in seconds and ``-m "not integration and not browser"`` skips the SDKs.

    Under xdist, the ``slow`` tests go first: a long test that starts last runs alone while
    the other workers sit idle (the 100,000 sessions of test_memory once ended a run 270 s
    after every other worker). With ``--maxschedchunk=1`` (the Makefile) each worker takes
    the next test when it is free, so the short ones fill in around the long ones."""
    for item in items:
        for name in _path_markers(Path(str(item.path))):
            item.add_marker(name)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave a test module unimported when ``-m`` deselects every test it could hold: the
    framework modules import their SDKs (LiteLLM alone takes seconds), which a run of
    ``-m "not integration"`` or ``-m "not db"`` never needs. A test's own markers (``slow``)
    are unknown before import, so every combination of them is tried."""
    expression = config.getoption("markexpr")
    if not expression or "(" in expression or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py":
        return None
    try:
        compiled = Expression.compile(expression)
    except SyntaxError:
        return None
    fixed = _path_markers(collection_path)
    free = sorted(set(re.findall(r"[A-Za-z_]\w*", expression)) - _WORDS - _PATH_MARKERS)
    for chosen in itertools.product((False, True), repeat=len(free)):
        present = fixed | {name for name, on in zip(free, chosen, strict=True) if on}
        if compiled.evaluate(_Markers(present)):
            return None
    return True


class _Markers:
    """An ``-m`` matcher: true for the markers a test would carry."""

    def __init__(self, present: set[str]) -> None:
        self._present = present

    def __call__(self, name: str, /, **arguments: str | int | bool | None) -> bool:
        return name in self._present
