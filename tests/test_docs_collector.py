"""The docs collector itself: what it runs, skips and checks (pages written here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_samples import blocks, run_page, runnable

FENCE = "```"


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text.replace("~~~", FENCE))
    return page


def test_blocks_run_in_order_in_one_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(
        tmp_path,
        "~~~python\nvalue = 41\n~~~\n\ntext\n\n- item:\n\n    ~~~python\n    value += 1\n"
        "    from pathlib import Path\n    Path('out.txt').write_text(str(value))\n    ~~~\n",
    )
    run_page(page)
    assert (tmp_path / "out.txt").read_text() == "42"


def test_a_failing_block_fails_the_page_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(tmp_path, "# Title\n\n~~~python\nx = 1\nraise ValueError('broken sample')\n~~~\n")
    with pytest.raises(ValueError, match="broken sample") as raised:
        run_page(page)
    assert raised.traceback[-1].lineno + 1 == 5  # the page's own line


def test_a_no_run_block_is_skipped_and_needs_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(tmp_path, "<!-- no-run: needs a server -->\n~~~python\nraise SystemExit(9)\n~~~\n")
    (block,) = blocks(page)
    assert block.no_run == "needs a server"
    assert not runnable(block)
    run_page(page)


def test_acp_commands_run_and_their_shown_output_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = _page(tmp_path, "~~~console\n$ acp db upgrade\n$ acp sessions list --json\n[]\n~~~\n")
    run_page(good)
    wrong = _page(tmp_path, "~~~console\n$ acp sessions list --json\n[{}]\n~~~\n")
    with pytest.raises(AssertionError, match="not what the page shows"):
        run_page(wrong)
    failing = _page(tmp_path, "~~~console\n$ acp policy validate missing.yaml\n~~~\n")
    with pytest.raises(AssertionError, match="exited 1"):
        run_page(failing)


def test_other_shell_lines_are_shown_not_run(tmp_path: Path) -> None:
    page = _page(tmp_path, "~~~bash\n$ pip install something\nmake demo\n~~~\n")
    (block,) = blocks(page)
    assert block.commands() == []
    assert not runnable(block)


def test_snippets_and_excerpts_are_read_from_the_files_they_name(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        '~~~yaml\n--8<-- "examples/policies/support-bot.yaml"\n~~~\n\n'
        "<!-- excerpt: examples/mcp_proxy/policy.yaml -->\n~~~yaml\ntools:\n~~~\n",
    )
    included, excerpt = blocks(page)
    assert "name: support-bot" in included.text()
    assert excerpt.excerpt_of == "examples/mcp_proxy/policy.yaml"
