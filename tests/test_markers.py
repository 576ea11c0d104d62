"""The markers select what they say: ``-m "not db"`` is the pure tests alone, the browser and
framework tests carry their markers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _collected(*arguments: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *arguments,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_not_db_selects_the_unit_tests_only() -> None:
    selected = _collected("-m", "not db", "tests/unit", "tests/test_memory.py")
    assert selected
    assert all(line.startswith("tests/unit/") for line in selected)


def test_browser_and_integration_tests_are_marked() -> None:
    browser = _collected("-m", "browser", "tests/test_dashboard_browser.py", "tests/test_memory.py")
    assert browser
    assert all("test_dashboard_browser" in line for line in browser)
    frameworks = _collected("-m", "integration", "tests/test_langgraph.py", "tests/test_memory.py")
    assert frameworks
    assert all("test_langgraph" in line for line in frameworks)


def test_a_deselected_framework_module_is_never_imported() -> None:
    """``-m "not db"`` over the whole suite imports no test module outside tests/unit, so
    no SDK either (LiteLLM alone takes seconds). Only a folder's entries can be left out:
    a module named on the command line is always collected."""
    probe = (
        "import sys, pytest\n"
        "code = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-m', "
        "'not db', 'tests'])\n"
        "print('litellm imported' if 'litellm' in sys.modules else 'litellm not imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "litellm not imported" in result.stdout
    assert "tests/unit/" in result.stdout
    assert "tests/test_memory.py::" not in result.stdout


def test_a_module_with_its_own_marker_is_still_collected() -> None:
    """A test's own markers are unknown before import: ``-m "slow"`` still finds the slow
    tests of a module whose path gives it only ``db``."""
    selected = _collected("-m", "slow and not integration", "tests/test_memory.py")
    assert selected
