"""One import for everything public: every name from ``agent_control_plane``, every error in
``errors.py`` (its docstring draws the tree), the old import paths kept, typed token reports."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import agent_control_plane
from agent_control_plane import ControlPlane, errors, models

SOURCE = Path(agent_control_plane.__file__).parent


def test_every_name_in_all_is_importable_from_the_package() -> None:
    for name in agent_control_plane.__all__:
        assert getattr(agent_control_plane, name) is not None, name
    assert set(agent_control_plane.__all__) <= set(dir(agent_control_plane))


def test_every_value_type_and_error_is_public() -> None:
    public = set(agent_control_plane.__all__)
    assert set(models.__all__) <= public
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert defined <= public
    assert {"Identity", "TokenUsage", "PolicyDocument", "__version__"} <= public


def test_every_error_class_lives_in_errors_py() -> None:
    ours = {name for name, value in vars(errors).items() if inspect.isclass(value)}
    outside = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base).split(".")[-1] in ours for base in node.bases
            ):
                outside.append(f"{path.relative_to(SOURCE)}:{node.name}")
    assert outside == []


def _tree(cls: type, depth: int = 0) -> list[str]:
    lines = ["    " * depth + cls.__name__]
    sub: type
    for sub in cls.__subclasses__():
        if sub.__module__ == errors.__name__:
            lines += _tree(sub, depth + 1)
    return lines


def test_the_errors_docstring_draws_the_tree_as_it_is() -> None:
    drawn = errors.__doc__ or ""
    for line in _tree(errors.ControlPlaneError):
        assert f"\n    {line}\n" in drawn + "\n", line


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("agent_control_plane.operations.approvals", "TicketNotFoundError"),
        ("agent_control_plane.operations.tokens", "ReservationNotFoundError"),
        ("agent_control_plane.operations.tokens", "TokenBudgetNotFoundError"),
        ("agent_control_plane.operations.agents", "AgentNotFoundError"),
        ("agent_control_plane.rules.tokens", "UnknownModelError"),
        ("agent_control_plane.integrations.langgraph", "ActionFailedBeforeError"),
        ("agent_control_plane.rules.tokens", "Identity"),
        ("agent_control_plane.rules.tokens", "TokenUsage"),
        ("agent_control_plane.control_plane", "ControlPlane"),
    ],
)
def test_the_old_import_paths_still_work(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(agent_control_plane, name)


def test_token_reports_are_typed_values_still_readable_by_key(tmp_path: Path) -> None:
    from agent_control_plane import Identity, TokenUsage

    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        cp.set_prices({"gpt-4o-mini": {"input": "0.15", "output": "0.6"}})
        cp.set_token_budget(Identity(org="acme"), "day", max_tokens=1000)
        cp.record_usage(
            Identity(org="acme"), "gpt-4o-mini", TokenUsage(input_tokens=100, output_tokens=20)
        )
        (status,) = cp.token_budget_status()
        (row,) = cp.token_usage(group_by=["org", "model"])
    assert isinstance(status, agent_control_plane.TokenBudgetStatus)
    assert (status.used.tokens, status.limits.tokens, status.remaining.tokens) == (120, 1000, 880)
    assert status["used"]["tokens"] == 120  # the keys of the dicts these used to be
    assert isinstance(row, agent_control_plane.TokenUsageRow)
    assert (row.groups, row.total_tokens, row.requests) == (
        {"org": "acme", "model": "gpt-4o-mini"},
        120,
        1,
    )
    assert row["model"] == "gpt-4o-mini"
    assert row["total_tokens"] == 120
    with pytest.raises(KeyError):
        row["team"]
